"""Who calls: the caller's bearer key read from the headers (within sane sizes), and the team
and key it belongs to, or the anonymous team where one is configured."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from gateway.runtime.gateway import Gateway
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
    if token:
        found = await gw.teams.authenticate(key_digest(token))
        if found is not None:
            key, team = found
            exchange = exchange_of(request.scope)
            exchange.team, exchange.key_id = team.name, key.id
            return Caller(team, key)
    if gw.anonymous is not None:
        exchange_of(request.scope).team = gw.anonymous.name
        return Caller(gw.anonymous, None)
    raise errors.invalid_key(token) if token else errors.missing_key()


def caller_token(headers: Iterable[tuple[bytes, bytes]], max_header_bytes: int) -> str:
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


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return ""
    return ""
