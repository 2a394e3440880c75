"""The unit tier runs in-process: a test here that opens a socket or starts a process fails at
once, so that the tier stays fast and runs on a machine with nothing installed. Such a test
belongs in tests/server (or tests/redis)."""

from __future__ import annotations

import socket
import subprocess

import pytest


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError(
        "a unit test opened a socket or started a process: it belongs in tests/server"
    )


@pytest.fixture(autouse=True)
def in_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # An event loop's own wake-up pipe is a socketpair, which neither binds nor connects.
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)
