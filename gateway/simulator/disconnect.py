"""Noticing a client that leaves while the simulator is still answering (raw ASGI), and what
the simulator then does, as OpenAI does: a stream stops with its reader (its bill is what was
generated), a whole answer is finished and billed whoever waits for it."""

from __future__ import annotations

import asyncio

import orjson

from gateway.simulator import multipart
from gateway.simulator.call import Message, Receive


def finished_when_left(method: str, body: bytes, content_type: str) -> bool:
    """Whether a request whose client leaves before its answer is still answered (to nobody)
    and billed: every POST but one asking for an event stream (`stream: true`, speech's
    `stream_format: sse`, a transcription form's `stream=true`)."""
    if method != "POST":
        return False
    boundary = multipart.boundary_of(content_type)
    if boundary is not None:
        parts = multipart.parse(body, boundary)
        field = multipart.form(parts).get("stream") if parts is not None else None
        return field is None or field.data.strip().lower() != b"true"
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(payload, dict):
        return True
    return payload.get("stream") is not True and payload.get("stream_format") != "sse"


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
