"""A request's body: read within the size limit, straight from `receive`, and parsed as one
JSON object with OpenAI's errors for what is not.

A JSON body goes upstream written again from the object the gateway read (`read_json_object`),
never as the client's bytes: a key given twice is read as its last value here, and another
parser might take the first (a cheap model checked and charged, a dear one served)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request

from gateway.wire import errors
from gateway.wire.multipart import MalformedForm, Part, read_form

JSON = "application/json"


def declared_length(request: Request, limit: int) -> int | None:
    """The length a request's Content-Length declares (None without one: a chunked body),
    refused over `limit`."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise errors.invalid_content_length()
    if int(declared) > limit:
        raise errors.body_too_large(limit)
    return int(declared)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """A body as it arrives, to be sent on without being held whole: one of a declared length
    (`declared_length`), which the server holds it to; `client_closed` if the client leaves
    before it ends."""
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise errors.client_closed()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(request: Request, limit: int) -> bytes:
    declared_length(request, limit)
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


def read_form_body(body: bytes, content_type: str) -> list[Part] | None:
    """A `multipart/form-data` body's parts; None for a body of another kind. A form goes
    upstream as it came, so one not read for certain is refused (`invalid_form`) rather than
    sent with a field nobody checked."""
    try:
        return read_form(body, content_type)
    except MalformedForm as exc:
        raise errors.invalid_form(str(exc)) from None


# orjson reads 1024 levels of nesting but writes 254.
MAX_WRITTEN_DEPTH = 254


async def read_json_object(request: Request, limit: int) -> tuple[dict[str, Any], bytes]:
    """A JSON request body's object, and the bytes to send upstream: that object written again."""
    payload = parse_json_object(request, await read_body(request, limit))
    return payload, written(payload)


def written(payload: Any) -> bytes:
    """A body the gateway read, written again for upstream; one nested deeper than that can be
    written is refused (400)."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:  # only its depth: everything else orjson read, it writes
        raise errors.nested_too_deep("body", MAX_WRITTEN_DEPTH) from None


def declared_media(request: Request) -> str:
    """The media type a request says its body is; JSON when it says none (curl -d sends a form
    type, but scripts often send none, and are forgiven)."""
    content_type = request.headers.get("content-type")
    return JSON if content_type is None else content_type.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == JSON or media.endswith("+json")


def parse_json_object(request: Request, body: bytes) -> dict[str, Any]:
    media = declared_media(request)
    if not is_json(media):
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


class _Repeated(Exception):
    pass


def _unrepeated(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Repeated(key)
        seen.add(key)


def lenient_only(text: str | bytes) -> bool:
    """Whether JSON text the gateway's reader refuses is an object or array to a lenient one
    (Python's: `NaN`, `Infinity`, `1e400`, a byte order mark, UTF-16), as upstream may read it."""
    try:
        return isinstance(json.loads(text), dict | list)
    except (ValueError, RecursionError):
        return False


def repeated_key(text: str | bytes) -> str | None:
    """Why JSON text (orjson read it already) may mean something else to another parser: the
    first key an object in it gives twice; None when there is none."""
    try:
        json.loads(text, object_pairs_hook=_unrepeated)
    except _Repeated as repeated:
        return f"it gives the key {repeated.args[0]!r} twice"
    except RecursionError:
        return "it nests too deeply to be checked"
    except ValueError:
        return "it is JSON that parsers do not all read alike"
    return None
