"""One authenticated /v1 request on its way through a handler, and the raw ASGI types.

Its own module so that endpoint modules beside `app` (the Responses API) take the same request
without importing the app that routes to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway.simulator.knobs import Knobs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]


@dataclass(slots=True)
class Call:
    path: str
    # The raw query string, as ASGI gives it (latin-1 text).
    query: str
    body: bytes
    key: str
    knobs: Knobs
    started: float
    receive: Receive
    send: Send
    # The request's content-type header (the upload endpoints read multipart bodies).
    content_type: str = ""
