"""A request's body: read within the size limit, straight from `receive`, and parsed as one
JSON object with OpenAI's errors for what is not."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from gateway.wire import errors

JSON = "application/json"


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
