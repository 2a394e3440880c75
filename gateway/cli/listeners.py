"""The sockets `serve` listens on: the API port, and the metrics port when one is set.

uvicorn serves one app on any number of sockets, in one process or in each worker process;
the app tells the two apart by the local port of each request (`gateway.server.metrics_port`).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess


def run_server(app: Any, metrics: tuple[str, int] | None, **options: Any) -> None:
    """`uvicorn.run(app, **options)`, listening on `metrics` (host, port) as well if given."""
    if metrics is None:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, **options)
    host, port = metrics
    # log_config=None: this Config only binds, and must not reset the logging set up above.
    second = uvicorn.Config(app, host=host, port=port, log_config=None)
    sockets = [config.bind_socket(), second.bind_socket()]
    if config.workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)
