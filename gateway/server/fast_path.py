"""`POST /v1/chat/completions` straight to its handler, past Starlette's router.

Nearly every request a gateway serves is this one. Starlette's exception middleware, router,
route and request/response wrappers take a measurable share of the CPU of a proxied call, for a
match the first route would make anyway. This middleware sits just inside `Observe` and answers
that one route itself with the same handler and the same error handlers; every other request
goes down the normal stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class Shortcut:
    def __init__(
        self,
        app: ASGIApp,
        path: str,
        method: str,
        handler: Handler,
        on_error: Callable[[Exception], ErrorHandler],
    ) -> None:
        self.app = app
        self.path = path
        self.method = method
        self.handler = handler
        self.on_error = on_error  # the registered handler for an exception (by its class)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await self.handler(request)
        except Exception as exc:
            response = await self.on_error(exc)(request, exc)
        await response(scope, receive, send)
