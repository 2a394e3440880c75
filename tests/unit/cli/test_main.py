"""`o1-gateway serve`'s own helpers."""

from __future__ import annotations

import resource

from gateway.cli.main import raise_open_files


def test_the_open_files_limit_is_lifted_towards_what_the_connections_need() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, soft), hard))
        wanted = min(512, hard)
        assert raise_open_files(wanted) == wanted
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (wanted, hard)
        assert raise_open_files(64) == 64  # never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == wanted
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
