"""The story of one request: identify the caller, read and check the body, admit it against
its limits and budget, call upstream, answer, and settle what it cost.

Chat completions, the local model list and the pass-through for every other `/v1/*` path share
one path through here, so auth, admission, header rules, error mapping and metrics are the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.admission import plan
from gateway.admission.plan import Bucket, WeeklyCap
from gateway.admission.pricing import worst_case_micros
from gateway.admission.redis_side import Ticket, admitted, next_month, refusal
from gateway.admission.script_pipeline import OnSent
from gateway.compat import emulation, patches
from gateway.config import Capabilities, ModelConfig, Price
from gateway.endpoints.chat_answers import (
    answer_emulated,
    charge,
    emulation_plan,
    fake_streamed,
    relayed,
    send_upstream,
)
from gateway.routing.aliases import Routed, choose, route_headers
from gateway.runtime.gateway import Gateway
from gateway.server.intake import JSON, Caller, gateway_of, identify, parse_json_object, read_body
from gateway.server.recording import Exchange, exchange_of
from gateway.server.stream_response import StreamResponse, cancel_on_disconnect
from gateway.upstream.contract import UpstreamResponse
from gateway.upstream.dispatch import PreparedCall
from gateway.wire import sse, tokens, validation
from gateway.wire.errors import GatewayError
from gateway.wire.headers import client_response_headers, encoded
from gateway.wire.usage import StreamMeter

log = logging.getLogger("gateway")
# The upstream account's own administration (usage and costs of every project, users, admin
# keys, projects): a team key must never reach it with the gateway's upstream key.
ACCOUNT_PATHS = ("/organization", "/dashboard")


async def chat_completions(request: Request) -> Response:
    gw = gateway_of(request)
    exchange = exchange_of(request.scope)
    routed: Routed | None = None
    try:
        caller = await identify(gw, request)
        body = await read_body(request, gw.config.server.max_body_bytes)
        payload = parse_json_object(request, body)
        validation.check_chat(payload, gw.config.server)  # a model name is there now
        name: str = payload["model"]
        routed = await choose(gw, caller.team, name, payload)
        if routed is not None:
            exchange.model, exchange.policy = name, routed.policy
            exchange.route_reason = "; ".join(routed.decision.reasons)
            name = routed.decision.model
        found = gw.models.get(name)
        if found is None or not plan.model_allowed(gw.config, caller.team, found[0]):
            raise model_not_found(name)
        exchange.model = exchange.model or found[0]
        exchange.stream = payload.get("stream") is True
        response = await serve_with_fallbacks(gw, request, caller, payload, body, found[0])
        if routed is not None:
            # Appended raw: names the response cannot hold already, and MutableHeaders would
            # scan and re-encode the whole list for each one.
            response.raw_headers += encoded(route_headers(routed.decision).items())
        return response
    except GatewayError as exc:
        if routed is not None:
            exc.headers.update(route_headers(routed.decision))
        raise


# Upstream trouble worth trying the next model for; the gateway's own refusals are not.
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504})
FALLBACK_CODES = frozenset({"upstream_unreachable", "upstream_timeout", "upstream_circuit_open"})


async def serve_with_fallbacks(
    gw: Gateway, request: Request, caller: Caller, payload: dict[str, Any], body: bytes, first: str
) -> Response:
    """Serve with `first`, then its configured fallbacks while upstream fails or rate plan.

    A model whose circuit is open is skipped at once (unless it is the last one left). Each
    fallback is patched for its own capabilities and admitted and charged on its own; the
    failed try was released, so the team pays for what ran.
    """
    exchange = exchange_of(request.scope)
    candidates = [first] + [
        m
        for m in gw.config.models[first].fallbacks
        if plan.model_allowed(gw.config, caller.team, m)
    ]
    taken: list[str] = []
    for index, label in enumerate(candidates):
        last = index == len(candidates) - 1
        if not last and not gw.dispatch.available(label):
            taken.append(f"{label} -> {candidates[index + 1]} (circuit open)")
            gw.metrics.upstream_fallbacks.labels(label, candidates[index + 1]).inc()
            continue
        exchange.routed_model = label
        try:
            response = await serve_model(gw, request, caller, payload, body, label)
        except GatewayError as exc:
            if last or exc.code not in FALLBACK_CODES:
                if taken:
                    exc.headers["x-gateway-fallback"] = "; ".join(taken)
                raise
            why = exc.code
        else:
            if last or response.status_code not in FALLBACK_STATUSES:
                if taken:
                    response.headers["x-gateway-fallback"] = "; ".join(taken)
                return response
            why = str(response.status_code)
        taken.append(f"{label} -> {candidates[index + 1]} ({why})")
        gw.metrics.upstream_fallbacks.labels(label, candidates[index + 1]).inc()
        log.warning("falling back from %s to %s (%s)", label, candidates[index + 1], why)
    raise AssertionError("the last candidate always answers")  # pragma: no cover


async def serve_model(
    gw: Gateway, request: Request, caller: Caller, payload: dict[str, Any], body: bytes, label: str
) -> Response:
    model = gw.config.models[label]
    caps = gw.learned.effective(label, model.capabilities, time.monotonic())
    response = await serve_chat(gw, request, caller, payload, body, label, model, caps)
    lacking = _lacking_capability(gw, caller, response, caps)
    if lacking is not None:
        # The capability table was stale: patch that too, retry once, remember it.
        caps = gw.learned.learn(label, caps, lacking, time.monotonic())
        gw.metrics.adaptive_patches.labels(label, lacking).inc()
        log.warning("upstream refused %s for %s: patching it from now on", lacking, label)
        response = await serve_chat(gw, request, caller, payload, body, label, model, caps)
    return response


def _lacking_capability(
    gw: Gateway, caller: Caller, response: Response, caps: Capabilities
) -> str | None:
    if response.status_code != 400 or isinstance(response, StreamingResponse):
        return None
    if not gw.config.compat.enabled or caller.team.strict:
        return None
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return None
    lacking = patches.capability_refused(400, body)
    return lacking if lacking is not None and getattr(caps, lacking) else None


async def serve_chat(
    gw: Gateway,
    request: Request,
    caller: Caller,
    original: dict[str, Any],
    body: bytes,
    model_label: str,
    model: ModelConfig,
    caps: Capabilities,
) -> Response:
    """Patch, admit, call upstream and answer one chat request (maybe twice: see the caller)."""
    ticket: Ticket | None = None
    early: EarlyCall | None = None
    try:
        working, emulated_as = original, None
        if gw.config.compat.enabled and not caller.team.strict:
            working, emulated_as = emulation.emulate_request(original, caps)
        adapted = None if caller.team.strict else adapt(gw, working, caps)
        payload = dict(adapted.payload if adapted is not None else working)
        if emulated_as is not None:
            # The answer must be parsed whole before the client sees it: stream it afterwards.
            adapted = emulation_plan(original, adapted, emulated_as)
            payload.pop("stream", None)
            payload.pop("stream_options", None)
        stream = payload.get("stream") is True
        rewrite = adapted is not None or payload["model"] != model.upstream
        payload["model"] = model.upstream
        strip_usage = False
        if stream and gw.config.admission.enabled:
            # Ask upstream for the usage chunk so the stream is charged exactly.
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                payload["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
                strip_usage = rewrite = True
        if rewrite:
            body = orjson.dumps(payload)
        if adapted is not None:
            exchange_of(request.scope).patches = adapted.patches
            gw.after_response(gw.metrics.count_patches, model_label, adapted.patches)
        if gw.config.admission.enabled:
            if emulated_as is None:
                early = EarlyCall(gw, request, model_label, body)
            ticket = await admit_chat(
                gw, caller, payload, model_label, model, early.sent if early is not None else None
            )
            exchange_of(request.scope).ticket = ticket
        if emulated_as is not None and adapted is not None:
            return await answer_emulated(gw, request, payload, adapted, emulated_as, ticket)
        prepared, headers = (early.call, early.headers) if early is not None else (None, None)
        if adapted is not None and adapted.fake_stream:
            return await fake_streamed(
                gw, request, body, adapted, ticket, prepared=prepared, headers=headers
            )
        return await forward(
            gw, request, "/chat/completions", body, stream=stream, ticket=ticket, strip_usage=strip_usage, adapted=adapted,
            prepared=prepared, headers=headers,
        )  # fmt: skip
    except GatewayError as exc:
        if ticket is not None:
            _release_for(exc, ticket)
            exc.headers.update(ticket.headers)
        raise
    finally:
        if early is not None and early.call is not None:
            early.call.cancel()  # refused or failed before the call took it (else: nothing)


class EarlyCall:
    """A chat call's first upstream try, made ready while its admission is in flight and
    written the moment an admitting reply arrives, before the request's task resumes: the
    reply's decoding, the ticket and the send path (about 50 µs at c=1) then overlap the
    upstream's work instead of preceding it. Refused, failed or replayed admissions write
    nothing; without the pipelined Redis client, or without an idle upstream connection, the
    call is sent the usual way after the admission. A request that fails between an admitting
    reply and its call aborts the written call; its hold is charged when it expires, as any
    hold never settled is."""

    __slots__ = ("_body", "_gw", "_label", "_request", "call", "headers")

    def __init__(self, gw: Gateway, request: Request, label: str, body: bytes) -> None:
        self._gw = gw
        self._request = request
        self._label = label
        self._body = body
        self.call: PreparedCall | None = None
        self.headers: dict[str, str] | None = None  # the upstream headers, once made

    def sent(self, reply: asyncio.Future[Any]) -> None:
        """The admission is on its way (`Admission.admit`'s `sent`): get ready meanwhile."""
        scope = self._request.scope
        self.headers = self._gw.upstream_headers(scope["headers"])
        self.call = self._gw.dispatch.prepare(
            self._label, "POST", "/chat/completions", scope["query_string"], self.headers,
            self._body,
        )  # fmt: skip
        if self.call is not None:
            reply.add_done_callback(self._on_reply)

    def _on_reply(self, reply: asyncio.Future[Any]) -> None:
        if self.call is not None and admitted(reply):
            self.call.fire()


def adapt(gw: Gateway, payload: dict[str, Any], caps: Capabilities) -> patches.Adapted | None:
    """Patch what the model lacks (by its capability table); None when nothing needed it."""
    if not gw.config.compat.enabled:
        return None
    adapted = patches.adapt_request(
        payload,
        caps,
        min_completion_tokens=gw.config.compat.reasoning_headroom_tokens,
    )
    if not adapted.patches and not adapted.fake_stream:
        return None
    return adapted


async def admit_chat(
    gw: Gateway,
    caller: Caller,
    payload: dict[str, Any],
    model_label: str,
    model: ModelConfig,
    sent: OnSent | None = None,
) -> Ticket:
    messages = payload.get("messages")
    prompt = tokens.count_messages(messages) if isinstance(messages, list) else 0
    requested = _requested_completion(payload)
    cap = min(requested or model.max_output, model.max_output)
    est_completion = requested or gw.config.admission.default_completion_tokens
    plan = (
        gw.plan_shapes()
        .get(caller.team, caller.key, model_label)
        .plan(
            gw.new_hold_id(), prompt + est_completion, worst_case_micros(model.price, prompt, cap)
        )
    )
    return await _admit(gw, plan, model.price, prompt, sent)


async def _admit(
    gw: Gateway,
    plan: plan.Plan,
    price: Price | None,
    prompt: int,
    sent: OnSent | None = None,
) -> Ticket:
    gw.idle_soon()  # runs after the admit is written (see ScriptClient), during the round trip
    decision = await gw.admission.admit(plan, sent)
    if not decision.admitted:
        by = decision.refused_by
        kind = (
            by.kind if isinstance(by, Bucket)
            else "weekly_messages" if isinstance(by, WeeklyCap)
            else "budget"
        )  # fmt: skip
        gw.metrics.refusals.labels(plan.team, kind).inc()
        raise refusal(decision, plan, next_month(datetime.now(UTC)))
    return Ticket(gw.admission, plan, price, prompt, decision.windows)


def _requested_completion(payload: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _release_for(exc: GatewayError, ticket: Ticket) -> None:
    # 499: the caller left while upstream was working; anything else: nothing was generated.
    if exc.status == 499:
        ticket.abandon()
    else:
        ticket.release()


async def passthrough(request: Request) -> Response:
    gw = gateway_of(request)
    path = request.scope["path"][len("/v1") :]
    ticket: Ticket | None = None
    try:
        caller = await identify(gw, request)
        if path.startswith(ACCOUNT_PATHS):
            raise GatewayError(
                403,
                "The upstream account's organization endpoints are not available through "
                "the gateway.",
                type_="permission_error",
                code="forbidden_path",
            )
        body = await read_body(request, gw.config.server.max_body_bytes)
        if gw.config.admission.enabled:
            # Token use is unknown up front: count the request, charge the usage it reports.
            shape = gw.plan_shapes().get(caller.team, caller.key, "", counts_tokens=False)
            plan = shape.plan(gw.new_hold_id(), est_tokens=0, reserve=0)
            ticket = await _admit(gw, plan, None, 0)
            exchange_of(request.scope).ticket = ticket
        return await forward(gw, request, path, body, stream=None, ticket=ticket)
    except GatewayError as exc:
        if ticket is not None:
            _release_for(exc, ticket)
            exc.headers.update(ticket.headers)
        raise


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    data = [
        _model_object(name)
        for name in gw.config.models
        if plan.model_allowed(gw.config, caller.team, name)
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    name = request.path_params["model"]
    if name not in gw.config.models or not plan.model_allowed(gw.config, caller.team, name):
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


async def forward(
    gw: Gateway,
    request: Request,
    path: str,
    body: bytes,
    stream: bool | None,
    ticket: Ticket | None = None,
    strip_usage: bool = False,
    adapted: patches.Adapted | None = None,
    prepared: PreparedCall | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Send upstream and relay the answer. `stream=None` means: decide from the response;
    `prepared` is the first try (see `EarlyCall`), `headers` the upstream headers if made."""
    if headers is None:
        headers = gw.upstream_headers(request.scope["headers"])
    if ticket is not None and gw.loop is not None:
        gw.loop.call_soon(ticket.prepare_headers)  # runs once the request is written, meanwhile
    sent = time.perf_counter()
    async with cancel_on_disconnect(request.receive, gw.loop):
        try:
            resp = await send_upstream(
                gw, request, path, headers, body, buffer=stream is False, prepared=prepared
            )
        except GatewayError as exc:
            gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            raise
        exchange = exchange_of(request.scope)
        exchange.upstream_s = upstream_s = time.perf_counter() - sent
        out_headers = client_response_headers(resp.headers)
        out_headers.append((b"x-gateway-upstream-ms", b"%.1f" % (upstream_s * 1000)))
        if ticket is not None:
            out_headers += encoded(ticket.headers)
        if adapted is not None:
            out_headers.append((b"x-gateway-patched", ",".join(adapted.patches).encode()))
        content_type = next((v for k, v in resp.headers if k == b"content-type"), b"")
        streaming = content_type.startswith(b"text/event-stream") if stream is None else stream
        if streaming and resp.status == 200:
            # From here the stream response watches for the client leaving.
            exchange.stream = True
            meter = StreamMeter(strip_usage) if ticket is not None else None
            stream_response = StreamResponse(
                relay(gw, resp, exchange, meter, ticket), status_code=resp.status, loop=gw.loop
            )
            stream_response.raw_headers += out_headers
            return stream_response
        try:
            content = await resp.read()
        except GatewayError as exc:
            gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            raise
        finally:
            await resp.close()
        exchange.upstream_s = time.perf_counter() - sent
    if adapted is not None and adapted.stop and resp.status == 200:
        content = orjson.dumps(patches.adapt_response(orjson.loads(content), adapted))
    if ticket is not None:
        gw.after_response(charge, gw, ticket, resp.status, content)
    return relayed(content, resp.status, out_headers)


async def relay(
    gw: Gateway,
    resp: UpstreamResponse,
    exchange: Exchange,
    meter: StreamMeter | None = None,
    ticket: Ticket | None = None,
) -> AsyncIterator[bytes]:
    """Pass a stream through chunk by chunk. Cancellation (client gone) closes the upstream."""
    gw.metrics.open_streams.inc()
    try:
        async for chunk in resp.iter_chunks():
            out = meter.feed(chunk) if meter is not None else chunk
            if out:
                if exchange.first_token_at is None:
                    exchange.first_token_at = time.perf_counter()
                yield out
        if meter is not None and (rest := meter.flush()):
            yield rest
    except GatewayError as exc:
        # Headers are gone already: report the failure in-stream, as OpenAI does, then stop.
        gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
        exchange.error_code = exc.code or exc.type
        error = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
        yield sse.encode({"error": error})
    finally:
        gw.metrics.open_streams.dec()
        await resp.close()
        if ticket is not None and meter is not None:
            # Whatever ended the stream, charge what was generated.
            usage = meter.generated_usage(ticket.prompt_estimate)
            price = None
            if ticket.price is None and meter.model in gw.models:
                price = gw.models[meter.model][1].price
            model = gw.models[meter.model][0] if price is not None else None
            ticket.settle(usage, price, model)
