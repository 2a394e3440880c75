"""The event loop, looked up once by each object that lives on it.

Rule: imports only asyncio; any layer that does I/O may use it, and pure layers never do.

On Python 3.11 every `asyncio.get_running_loop()` asks the kernel for the process id (to notice
a fork), and so does everything that calls it: `asyncio.timeout`, `asyncio.create_task`, a
future made without a loop. An object that serves many requests on one loop keeps the loop
in a `KeptLoop` instead of looking it up on every request.
"""

from __future__ import annotations

import asyncio


class KeptLoop:
    """The running loop, looked up on first use and kept."""

    __slots__ = ("known",)

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.known = loop  # None until first used inside a running loop

    def __call__(self) -> asyncio.AbstractEventLoop:
        loop = self.known
        if loop is None:
            loop = self.known = asyncio.get_running_loop()
        return loop
