"""The store `serve` starts itself when no `REDIS_URL` is given: a redis-server from PATH, run as
a child process on a Unix socket in `redis.embedded_dir`, with its data in an append-only file
there. All workers share it, and what is made on it (teams, keys, spend) outlives a restart.

It is a real Redis rather than a snapshot of the in-process fakeredis: fakeredis runs the
admission script about ten times slower (a request's p50 went from 1.4 ms to 14 ms), and a
consistent snapshot of it would stop the event loop for as long as it takes to copy every key
(about 0.15 ms a key; one hold record per request stays for ten minutes).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO
from urllib.parse import quote

SOCKET = "redis.sock"
LOCK = "gateway.lock"
LOG = "redis.log"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# prctl(2): ask the kernel to signal the child when the process that started it dies.
PR_SET_PDEATHSIG = 1


class EmbeddedStoreError(Exception):
    """The embedded store cannot start; the message says why and what to do."""


class EmbeddedStore:
    """A running redis-server, and the lock that keeps a second gateway off its directory."""

    def __init__(self, process: subprocess.Popen[bytes], directory: Path, lock: IO[str]) -> None:
        self.process = process
        self.directory = directory
        self._lock = lock

    @property
    def url(self) -> str:
        return f"unix://{quote(str(self.directory / SOCKET))}"

    def stop(self) -> None:
        """Stop the server (it writes out its append-only file first) and release the directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._lock.close()


def start(directory: Path, binary: str) -> EmbeddedStore:
    """Start redis-server for `directory` and wait until it answers."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = (directory / LOCK).open("a")
    except OSError as exc:
        raise EmbeddedStoreError(f"cannot use {directory} for the embedded store: {exc}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise EmbeddedStoreError(
            f"the embedded store in {directory} is in use by another gateway: stop it, or give "
            "this one its own (O1GW__REDIS__EMBEDDED_DIR) or a Redis server (REDIS_URL)"
        ) from None
    try:
        return EmbeddedStore(_run(directory, binary), directory, lock)
    except BaseException:
        lock.close()
        raise


def _run(directory: Path, binary: str) -> subprocess.Popen[bytes]:
    path = directory / SOCKET
    if _answers(path):
        raise EmbeddedStoreError(
            f"a redis-server of an earlier gateway still serves {path}: stop it (its process "
            f"id is in {directory / 'redis.pid'}), then start the gateway again"
        )
    path.unlink(missing_ok=True)
    # Read from stdin, so nothing about it shows in the process list.
    settings = {
        "port": "0",  # no TCP: only this user reaches the socket
        "unixsocket": str(path),
        "unixsocketperm": "700",
        "dir": str(directory),
        "appendonly": "yes",
        "appendfsync": "everysec",  # a crash loses at most the last second
        "save": "",
        "pidfile": str(directory / "redis.pid"),
        "logfile": str(directory / LOG),
        "daemonize": "no",
    }
    config = "".join(f"{name} {_quoted(value)}\n" for name, value in settings.items())
    try:
        process = subprocess.Popen(
            [binary, "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal stops the gateway, which stops the
            # store once the workers have settled their last calls, not both at once.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        assert process.stdin is not None
        process.stdin.write(config.encode())
        process.stdin.close()
    except OSError as exc:
        raise EmbeddedStoreError(f"cannot run {binary} for the embedded store: {exc}") from exc
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not _answers(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise EmbeddedStoreError(
                f"redis-server did not start for {directory}: {_log_tail(directory)}"
            )
        time.sleep(0.01)
    return process


def _answers(path: Path) -> bool:
    """Whether a Redis server answers PING on the socket at `path`."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _die_with_parent() -> None:
    # Were the gateway killed outright, its store would otherwise run on alone.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _log_tail(directory: Path) -> str:
    try:
        lines = (directory / LOG).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " / ".join(lines[-3:]) or "no log"


def redis_server() -> str | None:
    """redis-server on PATH, if any."""
    return shutil.which("redis-server")
