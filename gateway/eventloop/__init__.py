"""The event loop, looked up once by each object that lives on it.

Rule: imports only asyncio; any layer that does I/O may use it, and pure layers never do.

On Python 3.11 every `asyncio.get_running_loop()` asks the kernel for the process id (to notice
a fork), and so does everything that calls it: `asyncio.timeout`, `asyncio.create_task`, a
future made without a loop. An object that serves many requests on one loop keeps the loop
instead of looking it up on every request: a `KeptLoop` class attribute looks it up on first use
and leaves it in the instance, where every later read is a plain attribute read. (`Gateway`,
a slotted object built before the loop runs, is handed its loop when it starts.)
"""

from __future__ import annotations

import asyncio
from typing import Any, overload


class KeptLoop:
    """A class attribute whose value, per instance, is the loop running at its first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> KeptLoop: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> asyncio.AbstractEventLoop: ...

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        loop = asyncio.get_running_loop()
        # Not a data descriptor: from now on the instance's own attribute is found first.
        instance.__dict__[self.name] = loop
        return loop
