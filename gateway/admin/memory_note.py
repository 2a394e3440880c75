"""The note on every admin answer of a gateway whose store is in its own memory (no Redis):
what the caller makes there is lost when the gateway stops, and `o1-gateway teams|keys|usage`
say so."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.server.entry import gateway_of

# The header, and its one value.
STORE_HEADER = b"x-gateway-store"
IN_MEMORY = b"memory"


class InMemoryNote:
    """Adds `x-gateway-store: memory` to the answers of `app` when the store is in memory."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if gateway_of(Request(scope)).config.redis.url:
            await self.app(scope, receive, send)
            return

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (STORE_HEADER, IN_MEMORY)]
            await send(message)

        await self.app(scope, receive, noted)
