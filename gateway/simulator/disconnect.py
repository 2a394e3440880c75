"""Noticing a client that leaves while the simulator is still answering (raw ASGI)."""

from __future__ import annotations

import asyncio

from gateway.simulator.call import Message, Receive


class DisconnectWatch:
    """Notices the client leaving while the app is still answering.

    ASGI servers accept sends after a disconnect and drop them silently, so without this a
    slow simulated stream would keep "talking" for its whole length to nobody.
    """

    __slots__ = ("_receive", "_waiter")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._waiter: asyncio.Future[Message] = asyncio.ensure_future(receive())

    @property
    def gone(self) -> bool:
        if not self._waiter.done():
            return False
        if self._waiter.result().get("type") == "http.disconnect":
            return True
        # Any other message (a stray empty body) is not a goodbye: keep listening.
        self._waiter = asyncio.ensure_future(self._receive())
        return False

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early if the client leaves; True if it left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.gone:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait({self._waiter}, timeout=remaining)
        return True

    def close(self) -> None:
        if not self._waiter.done():
            self._waiter.cancel()
