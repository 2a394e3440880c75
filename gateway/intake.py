"""What every endpoint first does with a request: find the app state, identify the caller from
its key, read the body within the size limit, and parse it as one JSON object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from gateway import errors
from gateway.auth import bearer_token, key_digest
from gateway.errors import GatewayError
from gateway.observe import exchange_of
from gateway.state import Gateway
from gateway.teams import Key, Team

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Caller:
    team: Team
    key: Key | None  # None: served as the anonymous team


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def identify(gw: Gateway, request: Request) -> Caller:
    token = bearer_token(request.scope["headers"])
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


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise GatewayError(400, "Invalid Content-Length header.", code="invalid_request")
        if int(declared) > limit:
            raise errors.body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.body_too_large(limit)
        chunks.append(chunk)
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
        raise errors.invalid_json(str(exc)) from exc
    if not isinstance(payload, dict):
        raise GatewayError(
            400,
            f"Invalid type for request body: expected an object, but got {type(payload).__name__} instead.",
            code="invalid_type",
        )
    return payload
