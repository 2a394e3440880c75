"""What every endpoint first does with a request: find the app state, identify the caller from
its key, read the body within the size limit, and parse it as one JSON object."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from gateway.runtime.gateway import Gateway
from gateway.server.entry import exchange_of
from gateway.teams.records import Key, Team
from gateway.teams.store import key_digest
from gateway.wire import errors

JSON = "application/json"
# Real keys are well under 200 bytes; uvicorn's own header limits are far larger than this.
MAX_AUTHORIZATION_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Caller:
    team: Team
    key: Key | None  # None: served as the anonymous team


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


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


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise errors.invalid_content_length()
        if int(declared) > limit:
            raise errors.body_too_large(limit)
    # Straight from `receive`: `request.stream()` is an async generator, which the loop
    # registers in a weak set and finalizes, for what is one message in nearly every request.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: left before sending it all
            raise errors.client_closed()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.body_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json_object(request: Request, body: bytes) -> dict[str, Any]:
    content_type = request.headers.get("content-type")
    # No content type at all is forgiven (curl -d sends a form type, but scripts often send none).
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != JSON and not media.endswith("+json"):
            raise errors.unsupported_media_type(media)
    if not body:
        raise errors.invalid_json("the body is empty")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_json(json_problem(body, exc)) from exc
    if not isinstance(payload, dict):
        raise errors.body_not_object(payload)
    return payload


def json_problem(body: bytes, exc: orjson.JSONDecodeError) -> str:
    """orjson's reason, made plain for the one case its wording hides: bytes that are not UTF-8."""
    try:
        body.decode()
    except UnicodeDecodeError as bad:
        return (
            f"the body is not valid UTF-8 (byte 0x{body[bad.start]:02x} at offset {bad.start}); "
            "JSON must be sent as UTF-8"
        )
    return str(exc)
