"""The story of one request: authenticate, read and check the body, call upstream, answer.

Chat completions, the local model list and the pass-through for every other `/v1/*` path share
one path through here, so auth, header rules, error mapping and metrics are the same for all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway import errors, sse
from gateway.errors import GatewayError
from gateway.headers import client_response_headers, upstream_request_headers
from gateway.state import Gateway
from gateway.upstream import UpstreamResponse

JSON = "application/json"
# Resource names that may label metrics; anything else is "other" so a caller cannot mint series.
KNOWN_ENDPOINTS = frozenset(
    {
        "assistants", "audio", "batches", "chat", "completions", "embeddings", "files",
        "fine_tuning", "images", "models", "moderations", "realtime", "responses", "threads",
        "uploads", "vector_stores",
    }
)  # fmt: skip


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def chat_completions(request: Request) -> Response:
    gw = gateway_of(request)
    started = time.perf_counter()
    model_label = ""
    try:
        gw.auth.authenticate(request.scope["headers"])
        body = await read_body(request, gw.config.server.max_body_bytes)
        payload = parse_json_object(request, body)
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            raise GatewayError(
                400,
                "you must provide a model parameter",
                param="model",
                code="missing_required_parameter",
            )
        found = gw.models.get(name)
        if found is None:
            raise model_not_found(name)
        model_label, model = found
        if payload["model"] != model.upstream:
            payload["model"] = model.upstream
            body = orjson.dumps(payload)
        return await forward(
            gw,
            request,
            "/chat/completions",
            body,
            "chat",
            model_label,
            started,
            stream=payload.get("stream") is True,
        )
    except GatewayError as exc:
        gw.metrics.observe("chat", model_label, exc.status, time.perf_counter() - started, None)
        raise


async def passthrough(request: Request) -> Response:
    gw = gateway_of(request)
    started = time.perf_counter()
    path = request.scope["path"][len("/v1") :]
    resource = path.split("/", 2)[1] if path.count("/") else ""
    endpoint = resource if resource in KNOWN_ENDPOINTS else "other"
    try:
        gw.auth.authenticate(request.scope["headers"])
        body = await read_body(request, gw.config.server.max_body_bytes)
        return await forward(gw, request, path, body, endpoint, "", started, stream=None)
    except GatewayError as exc:
        gw.metrics.observe(endpoint, "", exc.status, time.perf_counter() - started, None)
        raise


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    gw.auth.authenticate(request.scope["headers"])
    data = [_model_object(name) for name in gw.config.models]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    gw.auth.authenticate(request.scope["headers"])
    name = request.path_params["model"]
    if name not in gw.config.models:
        raise model_not_found(name)
    return Response(orjson.dumps(_model_object(name)), media_type=JSON)


def _model_object(name: str) -> dict[str, Any]:
    # `created` is fixed: it describes the model, not this gateway process.
    return {"id": name, "object": "model", "created": 1725148800, "owned_by": "o1-gateway"}


def model_not_found(name: str) -> GatewayError:
    return GatewayError(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        param=None,
        code="model_not_found",
    )


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


async def forward(
    gw: Gateway,
    request: Request,
    path: str,
    body: bytes,
    endpoint: str,
    model_label: str,
    started: float,
    stream: bool | None,
) -> Response:
    """Send upstream and relay the answer. `stream=None` means: decide from the response."""
    headers = upstream_request_headers(
        request.scope["headers"],
        gw.upstream_key,
        gw.config.upstream.organization,
        gw.config.upstream.project,
        gw.extra_forward_prefixes,
    )
    sent = time.perf_counter()
    async with cancel_on_disconnect(request):
        try:
            resp = await gw.upstream.send(
                request.method, path, request.scope["query_string"], headers, body
            )
        except GatewayError as exc:
            gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            raise
        answered = time.perf_counter()
        upstream_s = answered - sent
        out_headers, _request_id = client_response_headers(resp.headers)
        out_headers.append(("x-gateway-upstream-ms", f"{upstream_s * 1000:.1f}"))
        content_type = next((v for k, v in resp.headers if k == "content-type"), "")
        streaming = content_type.startswith("text/event-stream") if stream is None else stream
        if streaming and resp.status == 200:
            # From here Starlette's StreamingResponse watches for the client leaving.
            gw.metrics.observe_overhead(endpoint, (time.perf_counter() - started) - upstream_s)
            return StreamingResponse(
                relay(gw, resp, endpoint, model_label, started, upstream_s),
                status_code=resp.status,
                headers=dict(out_headers),
            )
        try:
            content = await resp.read()
        except GatewayError as exc:
            gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            raise
        finally:
            await resp.close()
    now = time.perf_counter()
    gw.metrics.observe(endpoint, model_label, resp.status, now - started, upstream_s)
    gw.metrics.observe_overhead(endpoint, sent - started)
    return Response(content, status_code=resp.status, headers=dict(out_headers))


@asynccontextmanager
async def cancel_on_disconnect(request: Request) -> AsyncIterator[None]:
    """Cancel the upstream call if the client leaves while we wait for it.

    o1 models think for minutes before answering; a caller that gave up should not keep that
    generation running. The watcher is one small task that sleeps in `receive()` until the
    server reports `http.disconnect`.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise errors.client_closed() from None
    finally:
        watcher.cancel()


async def relay(
    gw: Gateway,
    resp: UpstreamResponse,
    endpoint: str,
    model_label: str,
    started: float,
    upstream_s: float,
) -> AsyncIterator[bytes]:
    """Pass a stream through chunk by chunk. Cancellation (client gone) closes the upstream."""
    gw.metrics.open_streams.inc()
    status = resp.status
    try:
        async for chunk in resp.iter_chunks():
            yield chunk
    except GatewayError as exc:
        # Headers are gone already: report the failure in-stream, as OpenAI does, then stop.
        gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
        status = exc.status
        yield sse.encode(
            {
                "error": {
                    "message": exc.message,
                    "type": exc.type,
                    "param": exc.param,
                    "code": exc.code,
                }
            }
        )
    finally:
        gw.metrics.open_streams.dec()
        await resp.close()
        gw.metrics.observe(endpoint, model_label, status, time.perf_counter() - started, upstream_s)
