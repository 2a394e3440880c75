"""Who calls: the caller's bearer key read from the headers (within sane sizes), and the team
and key it belongs to. Only a request without an Authorization header may be served as the
anonymous team (where one is configured): a key that is presented and fails (unknown, revoked,
expired, not a bearer key) is a 401, so a mistyped or revoked key never spends someone else's
budget unnoticed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from gateway.observability.record import Exchange
from gateway.runtime.gateway import SANDBOX_KEY, Gateway
from gateway.server.entry import exchange_of
from gateway.teams.records import Key, Team
from gateway.teams.store import key_digest
from gateway.wire import errors

# Real keys are well under 200 bytes; uvicorn's own header limits are far larger than this.
MAX_AUTHORIZATION_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Caller:
    team: Team
    key: Key | None  # None: served as the anonymous team


async def identify(gw: Gateway, request: Request) -> Caller:
    token = caller_token(request.scope["headers"], gw.config.server.max_header_bytes)
    if token is None or (token == SANDBOX_KEY and gw.config.simulate):
        # The anonymous team as it is now: an admin change (its budget, its models) applies to
        # it within admission.cache_ttl_s, and once deleted it serves nobody.
        team = await gw.teams.cached_team(gw.anonymous) if gw.anonymous else None
        if team is not None:
            exchange = exchange_of(request.scope)
            exchange.team = team.name
            take_share(gw, exchange, team.name)
            return Caller(team, None)
        if token is None:
            raise errors.missing_key()
    if not token:
        raise errors.malformed_authorization()
    found = await gw.teams.authenticate(key_digest(token))
    if found is None:
        raise errors.invalid_key(token)
    key, team = found
    exchange = exchange_of(request.scope)
    exchange.team, exchange.key_id = team.name, key.id
    take_share(gw, exchange, team.name)
    return Caller(team, key)


def take_share(gw: Gateway, exchange: Exchange, team: str) -> None:
    """Count the request in its team's share of the worker until it ends (`Entry` gives it
    back), or refuse it when the team has all its share in flight: one team's slow calls
    must not take every upstream connection from the others."""
    if exchange.counted:
        return  # counted once however often the request is identified
    if not gw.shares.enter(team):
        raise errors.too_many_requests_in_flight(team, gw.shares.limit)
    exchange.counted = team


def caller_token(headers: Iterable[tuple[bytes, bytes]], max_header_bytes: int) -> str | None:
    """The bearer token, after refusing headers no real client needs: an Authorization header
    longer than any key, or more header bytes than `server.max_header_bytes` (the HTTP server
    below accepts any amount, and each request would keep them in memory)."""
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"authorization" and len(value) > MAX_AUTHORIZATION_BYTES:
            raise errors.authorization_too_long(len(value), MAX_AUTHORIZATION_BYTES)
    if size > max_header_bytes:
        raise errors.headers_too_large(size, max_header_bytes)
    return bearer_token(headers)


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The bearer key; "" when the Authorization header holds none, None without the header."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return None
