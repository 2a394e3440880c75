"""The operator's bearer keys (the admin key, the metrics key): compared in constant time, with
wrong guesses slowed per client address (`gateway.admission.auth_backoff`).

An attempt waits its turn with `asyncio.sleep`, so waiting blocks nobody else; one that would
wait too long is refused at once, so waiting attempts cannot pile up in memory.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass

from starlette.types import Scope

from gateway.runtime.gateway import Gateway


@dataclass(frozen=True, slots=True)
class KeyCheck:
    ok: bool
    attempt: int  # attempts in a row from this address, this one included
    waited_s: float = 0.0  # its turn came this much later than it arrived
    retry_after_s: float | None = None  # refused unseen: too many attempts are waiting


async def check_operator_key(
    gw: Gateway, scope: Scope, token: str, expected: str, realm: str
) -> KeyCheck:
    """`realm` names the key: each key's guesses are counted apart, so a scraper's successes
    with the metrics key never forgive admin-key guesses from the same address."""
    address = f"{realm} {client_address(scope)}"
    turn = gw.auth_backoff.take_turn(address, time.monotonic())
    if turn.wait_s is None:
        return KeyCheck(False, turn.attempt, retry_after_s=turn.retry_after_s)
    if turn.wait_s > 0:
        await asyncio.sleep(turn.wait_s)
    if hmac.compare_digest(token.encode(), expected.encode()):
        gw.auth_backoff.succeeded(address)
        return KeyCheck(True, turn.attempt, turn.wait_s)
    return KeyCheck(False, turn.attempt, turn.wait_s)


def client_address(scope: Scope) -> str:
    """The peer's address (the gateway takes no X-Forwarded-For: a client could make it up)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
