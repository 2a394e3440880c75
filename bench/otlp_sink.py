"""An OTLP/HTTP traces endpoint that takes every export and keeps nothing: what a traced
gateway exports to in `bench.tracing`, so the gateway pays its whole export (spans batched,
encoded, POSTed) while the collector's own work stays out of the measurement.

    python -m bench.otlp_sink --port PORT

POST /v1/traces answers an empty ExportTraceServiceResponse (`{}`, in JSON); GET
/stats says how many exports and bytes came.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from aiohttp import web


def make_app() -> web.Application:
    seen = {"exports": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        seen["exports"] += 1
        seen["bytes"] += len(body)
        return web.Response(body=b"{}", content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(seen)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
