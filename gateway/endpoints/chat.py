"""`POST /v1/chat/completions`, in named phases.

A `ChatRequest` identifies the caller, reads and checks the body and routes an alias once;
then the model, or its fallbacks while upstream fails, serve it. Each try at one model is a
`ChatAttempt`: patch the request for what the model lacks, admit it against the team's limits
and budget, then call, relay and settle (`Attempt`), or answer by emulation or a faked stream
(`chat_emulated`, `chat_fake_stream`).
"""

from __future__ import annotations

import logging
import re
import time
from functools import partial
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.admission.plan import Plan, model_allowed
from gateway.admission.pricing import (
    chat_audio,
    chat_prompt,
    choices,
    cost_micros,
    prediction_tokens,
    requested_completion,
    tier_percent,
)
from gateway.admission.tool_fees import NO_FEES, SEARCH_ITEM, search_fees
from gateway.compat import patches
from gateway.config import Capabilities, ModelConfig
from gateway.endpoints.attempt import Whole
from gateway.endpoints.cached import RAW_HEADER, CachedRequest
from gateway.endpoints.chat_emulated import answer_emulated
from gateway.endpoints.chat_fake_stream import fake_streamed
from gateway.endpoints.chat_stored import CHAT_COMPLETION
from gateway.endpoints.model_attempt import ModelAttempt, ask_served_tier
from gateway.endpoints.owned import check_references, made_now
from gateway.endpoints.route import (
    SUBSTITUTED,
    choose,
    count_substitution,
    refuse_shut_down,
    serving,
    stand_in_effort,
    successor_of,
)
from gateway.endpoints.tuned_models import fine_tuned
from gateway.routing.aliases import Routed, route_headers
from gateway.routing.retirement import Substitution
from gateway.server.body import parse_json_object, read_body, written
from gateway.server.caller import identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.server.stream_response import Unless
from gateway.upstream.dispatch import PreparedCall
from gateway.wire import errors, tokens, validation
from gateway.wire.errors import GatewayError
from gateway.wire.headers import encoded
from gateway.wire.references import unowned_reference
from gateway.wire.usage import StreamMeter, Usage, ask_usage_chunk

log = logging.getLogger("gateway")
PATH = "/chat/completions"
# Upstream trouble worth trying the next model for; the gateway's own refusals are not, nor a
# whole answer upstream may be generating and billing (`GatewayError.billed`).
FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504})
FALLBACK_CODES = frozenset({"upstream_unreachable", "upstream_timeout", "upstream_circuit_open"})
# A chunk that ends a choice: its `finish_reason` set (it is `null` in every other chunk).
_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')


async def chat_completions(request: Request) -> Response:
    return await ChatRequest(request).serve()


class ChatRequest:
    """One chat request: identified, read and routed once, then served by one model or more."""

    __slots__ = (
        "body", "caller", "exchange", "fees", "gw", "leaving", "payload", "request", "routed",
        "stand_ins", "substituted", "tier", "tried", "tuned",
    )  # fmt: skip
    API = "chat"  # the response cache's name for it

    def __init__(self, request: Request) -> None:
        self.gw = gateway_of(request)
        self.request = request
        self.exchange = exchange_of(request.scope)
        self.routed: Routed | None = None
        # The shut-down model the request named, served by its successor.
        self.substituted: Substitution | None = None
        # Successors serving shut-down fallbacks, and the fallback each serves (rarely any).
        self.stand_ins: dict[str, str] | None = None
        # The team's own fine-tune the request names, served as its base (the label routed).
        self.tuned: ModelConfig | None = None
        # What upstream bills beside the tokens: hosted tools, or a search model's search.
        self.fees = NO_FEES
        # What the service tier it asks for costs, in percent of the standard price.
        self.tier = 100
        # The plans its tries were admitted by, so far: a request limit counts it once.
        self.tried: tuple[Plan, ...] = ()
        # Whether a call its client leaves before the answer began stops (`Attempt.leaving`).
        self.leaving: Unless | None = None

    async def serve(self) -> Response:
        try:
            await self.identify()
            first = await self.route()
            cached = self.cached(first)
            if cached is None:
                response = await self.serve_with_fallbacks(first)
            else:
                self.leaving = cached.leaving
                response = await cached.serve(lambda: self.serve_with_fallbacks(first))
        except GatewayError as exc:
            exc.headers.update(self.decision_headers())
            raise
        if self.routed is not None or self.substituted is not None:
            # Appended raw: names the response cannot hold already, and MutableHeaders would
            # scan and re-encode the whole list for each one.
            response.raw_headers += encoded(self.decision_headers().items())
        return response

    def decision_headers(self) -> dict[str, str]:
        """What the gateway decided about the model: its route, a successor serving it."""
        headers = route_headers(self.routed.decision) if self.routed is not None else {}
        if self.substituted is not None:
            headers[SUBSTITUTED] = self.substituted.header
        return headers

    @property
    def effort(self) -> str:
        """The reasoning effort routing chose, else the one a successor is asked to stand in
        for the shut-down model named ("": none, or the client's own)."""
        if self.routed is not None and self.routed.decision.effort:
            return self.routed.decision.effort
        return self.substituted.effort if self.substituted is not None else ""

    def effort_for(self, label: str) -> str:
        """The effort the model `label` is asked: the request's (`effort`), else, for a
        successor standing in for a shut-down fallback, the one it stands in at."""
        named = self.stand_ins.get(label) if self.stand_ins is not None else None
        return self.effort or (stand_in_effort(self.gw, named) if named else "")

    def cached(self, first: str) -> CachedRequest | None:
        """The response cache's part in the request, when it is on for it."""
        routed, gw = self.routed, self.gw
        policy = gw.config.routing.policies.get(routed.policy) if routed is not None else None
        if not (
            self.caller.team.cache
            or (policy is not None and policy.cache)
            or any(name == RAW_HEADER for name, _ in self.request.scope["headers"])
        ):
            return None  # off: nothing more to look at
        cached = CachedRequest(
            self.gw, self.request, self.exchange, self.caller, self.API, self.client_payload(),
            first, self.tuned or self.gw.config.models[first], self.effort, self.tried,
            self.named(first),
        )  # fmt: skip
        return cached if cached.decide(routed.policy if routed is not None else "") else None

    def client_payload(self) -> dict[str, Any]:
        """The request as the client sent it."""
        return self.payload

    async def identify(self) -> None:
        """Phase one: who calls, and a body that is a sound chat request."""
        gw, request = self.gw, self.request
        self.caller = await identify(gw, request)
        self.body = await read_body(request, gw.config.server.max_body_bytes)
        self.payload = parse_json_object(request, self.body)
        validation.check_chat(self.payload, gw.config.server)  # a model name is there now
        self.tier = tier_percent(
            gw.config.admission.service_tiers, self.payload.get("service_tier")
        )
        if self.exchange.trace is not None:
            self.exchange.trace.request(self.payload)
        await check_references(gw, self.caller, self.body, self.payload)
        unowned = unowned_reference(self.payload)
        if unowned is not None:
            raise errors.unsupported_reference(unowned)
        self.fees = search_fees(self.payload, gw.config.hosted_tools)
        audio = chat_audio(self.payload)
        if audio is not None:
            raise errors.audio_unpriced(audio)

    async def route(self) -> str:
        """The configured model that serves first: an alias routed, a name checked."""
        gw, exchange = self.gw, self.exchange
        name: str = self.payload["model"]
        if name in gw.aliases:
            self.routed = self.fitted(await choose(gw, self.caller.team, name, self.payload))
        routed = self.routed
        if routed is not None:
            exchange.model, exchange.policy = name, routed.policy
            exchange.route_reason = "; ".join(routed.decision.reasons)
            name = routed.decision.model
        # A shut-down model's successor serves a team allowed the model it replaces.
        allowed_as = name
        substituted = successor_of(gw, name)
        if substituted is not None:
            exchange.model = exchange.model or substituted.old
            name, allowed_as = substituted.new, substituted.old
        found = gw.models.get(name)
        if found is None:
            found = await fine_tuned(gw, self.caller, name)
            self.tuned = found[1] if found is not None else None
            if found is not None:
                refuse_shut_down(gw, name, *found)
        if substituted is None and found is not None:
            allowed_as = found[0]
        if found is None or not model_allowed(gw.config, self.caller.team, allowed_as):
            raise errors.model_not_found(allowed_as if substituted is not None else name)
        if substituted is not None:  # served by it from here, and said so
            self.substituted = substituted
            exchange.substituted = substituted.header
            count_substitution(gw, substituted)
        exchange.model = exchange.model or found[0]
        exchange.stream = self.payload.get("stream") is True
        return found[0]

    def fitted(self, routed: Routed | None) -> Routed | None:
        """The route, for a request every model of its policy can serve (chat's can)."""
        return routed

    def named(self, label: str) -> str:
        """The shut-down model the request (or a fallback) named, when `label` is the successor
        serving it: its limits apply too (`plan.shape`); "" otherwise."""
        substituted = self.substituted
        if substituted is not None and label == substituted.new:
            return substituted.old
        return self.stand_ins.get(label, "") if self.stand_ins is not None else ""

    async def serve_with_fallbacks(self, first: str) -> Response:
        """Serve with `first`, then its configured fallbacks while upstream fails or rate limits.

        A model whose circuit is open is skipped at once (unless it is the last one left). Each
        fallback is patched for its own capabilities and admitted and charged on its own; the
        failed try was released, so the team pays for what ran. A whole answer that failed
        after its request was written does not fall back: upstream may still bill it, and the
        fallback's answer would be a second bill. A fallback shut down is tried as its
        successor, or not at all when nothing succeeds it. A shut-down model named keeps its
        own fallbacks, not its successor's: the shutdown changes who answers, not what the
        operator configured for the name the client sent.
        """
        gw = self.gw
        candidates = [first]
        named = self.substituted.old if self.substituted is not None else first
        for m in (self.tuned or gw.config.models[named]).fallbacks:
            if model_allowed(gw.config, self.caller.team, m):
                served = serving(gw, m)
                if served and served not in candidates:
                    candidates.append(served)
                    if served != m:
                        self.stand_ins = {**(self.stand_ins or {}), served: m}
        taken: list[str] = []
        for index, label in enumerate(candidates):
            last = index == len(candidates) - 1
            if not last and not gw.dispatch.available(label):
                taken.append(f"{label} -> {candidates[index + 1]} (circuit open)")
                gw.metrics.upstream_fallbacks.labels(label, candidates[index + 1]).inc()
                continue
            self.exchange.routed_model = label
            try:
                response = await self.serve_model(label)
            except GatewayError as exc:
                if last or exc.code not in FALLBACK_CODES or exc.billed:
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

    async def serve_model(self, label: str) -> Response:
        """One model's try; once more if upstream refused a parameter the capability table
        said the model takes (the table was stale: patch that too, and remember it)."""
        gw = self.gw
        model = self.tuned or gw.config.models[label]
        lesson = self.lesson(model)
        caps = gw.learned.effective(lesson, model.capabilities, time.monotonic())
        attempt = ChatAttempt(self, label, model, caps)
        try:
            response = await attempt.run()
        finally:
            self.tried_by(attempt)
        lacking = self.lacking_capability(response, caps)
        if lacking is not None:
            caps = gw.learned.learn(lesson, caps, lacking, time.monotonic())
            gw.metrics.adaptive_patches.labels(label, lacking).inc()
            log.warning("upstream refused %s for %s: patching it from now on", lacking, label)
            attempt = ChatAttempt(self, label, model, caps)
            try:
                response = await attempt.run()
            finally:
                self.tried_by(attempt)
        return response

    def lesson(self, model: ModelConfig) -> patches.LearnedKey:
        """Whose a capability upstream refused is, and for what (`LearnedCapabilities`): this
        team's, for the model as sent upstream (a fine-tune is not its base), at the effort
        asked."""
        asked = self.payload.get("reasoning_effort")
        effort = asked if asked is not None else self.effort
        return (self.caller.team.name, model.upstream, effort if isinstance(effort, str) else None)

    def tried_by(self, attempt: ModelAttempt) -> None:
        """Remember the plan a try was admitted by, for the tries after it (`counted_once`)."""
        if attempt.ticket is not None:
            self.tried += (attempt.ticket.plan,)

    def lacking_capability(self, response: Response, caps: Capabilities) -> str | None:
        if response.status_code != 400 or isinstance(response, StreamingResponse):
            return None
        if not self.gw.config.compat.enabled or self.caller.team.strict:
            return None
        try:
            body = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return None
        lacking = patches.capability_refused(400, body)
        return lacking if lacking is not None and getattr(caps, lacking) else None


def counted(payload: dict[str, Any], model: ModelConfig) -> tuple[int, int]:
    """The tokens a chat request's hold counts: its prompt's, and its predicted output's."""
    return chat_prompt(payload, model), prediction_tokens(payload)


class ChatAttempt(ModelAttempt):
    """One try at one model: patch, admit, then call, relay and settle."""

    __slots__ = ("adapted", "asked", "effort", "emulated_as", "fees", "payload", "strip_usage")

    def __init__(self, chat: ChatRequest, label: str, model: ModelConfig, caps: Capabilities):
        # Held at the price of the tier it asks for (a translated Responses request asks for
        # none: `auto`).
        tiers = chat.gw.config.admission.service_tiers
        tier = chat.tier if chat.payload is chat.client_payload() else tier_percent(tiers, None)
        super().__init__(
            chat.gw, chat.request, chat.exchange, chat.caller, PATH, label, model, caps, tier,
            chat.tried, chat.named(label),
        )  # fmt: skip
        self.payload = self.asked = chat.payload  # `patch` rewrites `payload`
        self.body = chat.body
        self.effort = chat.effort_for(label)
        self.fees = chat.fees
        self.leaving = chat.leaving

    def patch(self) -> None:
        """Rewrite the request for what the model lacks (`strip_usage`: the usage chunk this
        asks upstream for must be kept from the client)."""
        gw, compat = self.gw, self.gw.config.compat
        rewritten = patches.rewrite_for(
            self.payload, self.caps, self.effort,
            patch=compat.enabled and not self.caller.team.strict,
            min_completion_tokens=compat.reasoning_headroom_tokens,
        )  # fmt: skip
        payload, adapted = rewritten.payload, rewritten.adapted
        self.adapted, self.emulated_as = adapted, rewritten.emulated
        self.stream = stream = payload.get("stream") is True
        payload["model"] = self.config.upstream
        given = payload.get("safety_identifier")
        payload["safety_identifier"] = gw.safety_identifier(
            self.caller.team.name, given if isinstance(given, str) else None
        )
        ask_served_tier(payload)
        strip_usage = stream and gw.config.admission.enabled and ask_usage_chunk(payload)
        self.payload = payload
        # Never the client's own bytes: what upstream reads is what the gateway checked and
        # priced, even when a key is repeated (parsers differ on which of them counts).
        self.body = written(payload)
        if adapted is not None:
            self.exchange.patches = adapted.patches
            gw.after_response(gw.metrics.count_patches, self.model, adapted.patches)
        self.strip_usage = strip_usage

    async def hold(self) -> None:
        payload = self.payload
        if len(self.body) > tokens.OFF_LOOP_BYTES:
            prompt, predicted = await self.gw.count_off_loop(counted, payload, self.config)
        else:
            prompt, predicted = counted(payload, self.config)
        beside = self.fees.worst_case
        if predicted:
            # Its rejected tokens are billed as completion tokens beside those the cap bounds.
            beside += cost_micros(self.config.price, Usage(completion_tokens=predicted))
        # An emulated answer is parsed whole before it is sent: no early call.
        await self.hold_worst_case(
            prompt, requested_completion(payload), early=self.emulated_as is None,
            copies=choices(payload), fees=beside, passes=self.passes_tokens(self.fees),
        )  # fmt: skip

    def answer_fees(self, answer: dict[str, Any] | None) -> int:
        return self.search_fee()

    def stream_fees(self, meter: StreamMeter) -> int:
        return self.search_fee()

    def search_fee(self) -> int:
        """A search model's answer: one web search, made before it writes (so also billed
        when its stream is cut)."""
        if not self.fees.worst_case:
            return 0
        return self.charged_calls(self.fees, {SEARCH_ITEM: 1})

    async def answer(self) -> Response:
        """Call, relay and settle, or the answers the gateway builds itself."""
        adapted = self.adapted
        if self.emulated_as is not None and adapted is not None:
            return await answer_emulated(self, self.payload, adapted, self.emulated_as)
        prepared = self.prepared()
        if adapted is not None and adapted.fake_stream:
            return await fake_streamed(self, adapted, self.body, prepared=prepared)
        response = await self.forward(
            self.body, self.stream, strip_usage=self.strip_usage, adapted=adapted,
            prepared=prepared,
        )  # fmt: skip
        if self.payload.get("store") is True and not isinstance(response, StreamingResponse):
            await self.own(response.status_code, bytes(response.body))
        return response

    # -- stored completions (`store: true`): the caller's team's -------------------------------

    async def fetch(self, body: bytes, prepared: PreparedCall | None = None) -> Whole:
        """A whole answer (emulated, faked stream): its completion is the team's if stored."""
        whole = await super().fetch(body, prepared)
        if self.payload.get("store") is True:
            await self.own(whole[0], whole[2])
        return whole

    async def own(self, status: int, content: bytes) -> None:
        if status != 200:
            return
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            return
        if isinstance(answer, dict) and isinstance(answer.get("id"), str):
            try:
                await self.gw.owners.record(
                    CHAT_COMPLETION.name, self.caller.team.name, answer["id"], made_now()
                )
                view = self.client_view()
                if view:
                    await self.gw.chat_views.put(answer["id"], view)
            except (RedisError, OSError) as exc:
                # Upstream answered, and billed it: the client gets it (a 500 would be sent
                # again and billed again), though the team cannot read it back.
                log.error("cannot record the owner of chat completion %s: %r", answer["id"], exc)

    async def made_answer(self, answer: dict[str, Any], superseded: Any = None) -> None:
        """An emulated answer of a stored completion: upstream keeps the model's raw text, the
        client was answered these choices. An answer the repair replaced is no completion of
        the client's: forgotten, and deleted upstream (where no team could reach it)."""
        if self.payload.get("store") is not True:
            return
        gw = self.gw
        try:
            if isinstance(answer.get("id"), str):
                view = {
                    **self.client_view(),
                    "messages": self.asked.get("messages"),
                    "choices": answer.get("choices"),
                }
                await gw.chat_views.put(answer["id"], view)
            if isinstance(superseded, str) and superseded != answer.get("id"):
                await gw.owners.forget(CHAT_COMPLETION.name, self.caller.team.name, superseded)
                await gw.chat_views.delete(superseded)
        except (RedisError, OSError) as exc:
            # As for the owner record: the answer upstream billed still reaches its client.
            log.error(
                "cannot record how chat completion %s was answered: %r", answer.get("id"), exc
            )
        if isinstance(superseded, str) and superseded != answer.get("id"):
            path = f"{CHAT_COMPLETION.upstream}/{superseded}"
            try:
                resp = await gw.upstream.send("DELETE", path, b"", self.headers_for_upstream(), b"")
                try:
                    await resp.read()
                finally:
                    await resp.close()
            except GatewayError as exc:  # the client's answer stands; only a copy is left
                log.warning("cannot delete the superseded stored completion %s: %s", path, exc)

    def answer_ended(self, chunk: bytes) -> bool:
        # One choice's `finish_reason`: the answer's end, unless other choices still go on.
        n = self.payload.get("n")
        return (n is None or n == 1) and _FINISHED.search(chunk) is not None

    def winds_down(self, meter: StreamMeter, chunk: bytes) -> bool:
        # A chunk of one event in which every choice only finishes (its `finish_reason`, an
        # empty delta): of several choices, the others then finish too, or generate on (and
        # are closed at that).
        return (
            chunk.startswith(b"data: {") and chunk.endswith(b"\n\n") and only_finishes(chunk[6:-2])
        )

    def ended_early(self, meter: StreamMeter, tail: bytes) -> bool:
        return meter.ended_before_usage(tail)

    def stream_meter(self, strip_usage: bool) -> StreamMeter | None:
        meter = super().stream_meter(strip_usage)
        if self.payload.get("store") is not True:
            return meter
        # Also when not admitted: it finds the completion's id, for its owner record.
        meter = meter if meter is not None else StreamMeter(strip_usage)
        meter.on_id = self.owned
        return meter

    def owned(self, completion_id: str, created: int) -> None:
        """The stream named its completion: record it as the team's, and the client's view of
        it, beside the stream."""
        view = self.client_view()
        keep_view = partial(self.gw.chat_views.put, completion_id, view) if view else None
        self.gw.owners.record_soon(
            CHAT_COMPLETION.name, self.caller.team.name, completion_id, made_now(), keep_view
        )

    def client_view(self) -> dict[str, Any]:
        """What upstream stores of the completion otherwise than its client sent it
        (`objects.chat_views`): the conversation, when patched; the shut-down model named,
        which its successor stores under its own name. Empty when there is nothing."""
        view: dict[str, Any] = {}
        asked = self.asked.get("messages")
        if asked != self.payload.get("messages"):
            view["messages"] = asked
        if self.named:
            view["named"] = self.gw.config.models[self.named].upstream
        return view


def only_finishes(data: bytes) -> bool:
    """Whether a chunk's JSON is choices finishing and nothing else: no delta generates."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not (isinstance(choice, dict) and choice.get("finish_reason")):
            return False
        if delta is not None and not (
            isinstance(delta, dict) and not any(v for k, v in delta.items() if k != "role")
        ):
            return False
    return True
