"""The metrics port (`server.metrics_port`): a second listener of the same server, for
Prometheus alone. It answers `GET /metrics` and nothing else, without a key: it is meant to be
reachable only from monitoring (an internal interface, a NetworkPolicy). Which listener a
request came in on is the local port uvicorn reports in the scope.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.wire import errors

METRICS_PATH = "/metrics"


def local_port(scope: Scope) -> int | None:
    server = scope.get("server")
    return int(server[1]) if server and server[1] is not None else None


class MetricsPortOnly:
    """Outermost middleware when a metrics port is set: on that port, every path but /metrics
    is unknown, so nothing of the API (not even /healthz) answers there."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] != METRICS_PATH
            and local_port(scope) == self.port
        ):
            error = errors.invalid_url(scope["method"], scope["path"])
            response = Response(
                error.body(), error.status, error.headers, media_type="application/json"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
