"""The audit log: one JSON line per admin action (and per refused admin key), written at once.

Unlike the access log, nothing is batched: an admin action is rare and its line must survive a
crash right after it. Each line is one `write` to a file opened for appending, so the worker
processes of one gateway can share the file without tearing each other's lines.
"""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# How much of a caller-chosen string (a path, a team name) a line keeps.
MAX_FIELD_CHARS = 200


def key_fingerprint(secret: str) -> str:
    """Which credential acted, without the credential: the head of its SHA-256."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def audit_line(
    when: float,
    admin: str | None,
    client: str,
    action: str,
    target: str,
    outcome: str,
    **details: Any,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds"),
        "log": "audit",
        "admin": admin,
        "client": client,
        "action": action,
        "target": target[:MAX_FIELD_CHARS],
        "outcome": outcome,
    }
    line.update((name, value) for name, value in details.items() if value not in (None, ""))
    return line


class AuditLog:
    """Appends lines to `path`, or writes them to stderr (beside the gateway's log) when the
    path is empty. Opened at construction: a path that cannot be written stops the start."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640) if path else -1
        self._stderr = sys.stderr

    def write(self, record: dict[str, Any]) -> None:
        data = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        try:
            if self._fd >= 0:
                os.write(self._fd, data)
            else:
                self._stderr.write(data.decode())
                self._stderr.flush()
        except (OSError, ValueError):  # a full disk must not fail the action after the fact
            print(f"audit log {self.path} unwritable: {data.decode()}", end="", file=sys.stderr)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
