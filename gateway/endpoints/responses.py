"""`POST /v1/responses`: the Responses API, governed as chat is.

A `ResponsesRequest` is a `ChatRequest` with its own first phase: the caller, the body checked
as a Responses request, and the conversation it continues (`previous_response_id`, looked up
among the team's own responses). Routing, the team's model allowlist and fallbacks are chat's.
Each model then serves it one of two ways, as its capability table says:

- natively (`responses_api: true`): a `NativeAttempt` patches what the model refuses, holds the
  worst case (input with its images, instructions and tool schemas at the input price, plus
  `max_output_tokens` or the model's output cap at the output price), forwards, and settles to
  the usage of the answer or of the stream's terminal event; the team is recorded as the
  response's owner;
- by translation (models without the Responses API upstream): the request becomes a chat
  request (`translate.responses_chat`), the chat path serves it (its patches, emulation, faked
  streams, admission and charge), and the answer is translated back, as one Response object or
  as the Responses event stream; the gateway stores it for the team.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.admission.pricing import (
    format_tokens,
    function_output_images,
    image_tokens,
    other_tiers,
    reads_files,
    refers_to_items,
    responses_audio,
    responses_input_tokens,
    tier_percent,
)
from gateway.admission.redis_side import Ticket
from gateway.admission.tool_fees import tool_fees
from gateway.compat import patches
from gateway.config import Capabilities, ImageInputTokens, ModelConfig
from gateway.endpoints.attempt import rebodied
from gateway.endpoints.chat import ChatRequest
from gateway.endpoints.model_attempt import ModelAttempt, ask_served_tier
from gateway.endpoints.owned import CountedReads, attempt_for, check_references, counted
from gateway.endpoints.responses_stored import (
    answered_as_shown,
    owned_response,
    restore_previous,
)
from gateway.endpoints.route import successor_of
from gateway.objects.responses import StoredResponse
from gateway.routing import heuristic
from gateway.routing.aliases import Routed
from gateway.server.body import parse_json_object, read_body
from gateway.server.caller import identify
from gateway.translate import responses_chat
from gateway.translate.responses_chat_stream import EventStream
from gateway.wire import errors, obfuscation, sse, tokens, validation
from gateway.wire.errors import GatewayError
from gateway.wire.hosted_tools import call_counts, runs_free_tools
from gateway.wire.references import given_back_items, unowned_reference
from gateway.wire.usage import (
    ResponsesStreamMeter,
    StreamMeter,
    chained_context,
    item_ids,
    output_item_ids,
    reasoning_carried,
    reasoning_given,
    usage_from,
)

log = logging.getLogger("gateway")
PATH = "/responses"
# How far back a conversation upstream stores is read, for a model the gateway translates for.
MAX_CHAIN = 64
JSON = "application/json"
# The context of a previous response upstream has not finished: what it brings is not known.
UNKNOWN_CONTEXT = -1
# A response's statuses once it ended: its usage is final.
ENDED = frozenset({"completed", "incomplete", "failed", "cancelled"})
# Says that the gateway served the Responses API itself, through chat completions upstream.
TRANSLATED = (b"x-gateway-translated", b"responses->chat.completions")


async def create_response(request: Request) -> Response:
    return await ResponsesRequest(request).serve()


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: the prefix and 48 hex digits."""
    return prefix + secrets.token_hex(24)


class ResponsesRequest(ChatRequest):
    """One Responses API request: identified and routed once, served by one model or more."""

    __slots__ = (
        "_chat", "_history", "_prompt", "_untranslatable", "carried", "original", "previous",
    )  # fmt: skip
    API = "responses"

    def client_payload(self) -> dict[str, Any]:
        return self.original

    def lesson(self, model: ModelConfig) -> patches.LearnedKey:
        """As chat's, at the effort `reasoning.effort` asks: a translated request's lessons are
        its chat form's, and that form asks the same."""
        given = self.original.get("reasoning")
        asked = given.get("effort") if isinstance(given, dict) else None
        effort = asked if asked is not None else self.effort
        return (self.caller.team.name, model.upstream, effort if isinstance(effort, str) else None)

    async def identify(self) -> None:
        """Phase one: who calls, a sound Responses request, and the conversation it continues."""
        gw, request = self.gw, self.request
        self.caller = await identify(gw, request)
        self.body = await read_body(request, gw.config.server.max_body_bytes)
        original = parse_json_object(request, self.body)
        validation.check_responses(original, gw.config.server)
        self.tier = tier_percent(gw.config.admission.service_tiers, original.get("service_tier"))
        if self.exchange.trace is not None:
            self.exchange.trace.request(original)
        await check_references(gw, self.caller, self.body, original)
        unowned = unowned_reference(original)
        if unowned is not None:
            raise errors.unsupported_reference(unowned)
        audio = responses_audio(original)
        if audio is not None:
            raise errors.audio_unpriced(audio, "the Responses API")
        self.fees = tool_fees(original, gw.config.hosted_tools)
        unknown = await gw.responses.unknown_items(
            self.caller.team.name, given_back_items(original)
        )
        if unknown:
            raise errors.item_not_found(unknown[0])
        # The reasoning the input's reasoning items carry (None: not known), read as input.
        reasoning = reasoning_given(original)
        self.carried: int | None = (
            None if reasoning is None
            else await gw.responses.carried_reasoning(self.caller.team.name, reasoning)
        )  # fmt: skip
        options = original.get("prompt_cache_options")
        compared = options.get("comparison_response_id") if isinstance(options, dict) else None
        if compared is not None:
            await owned_response(gw, self.caller, str(compared))
        self.original = original
        self.previous: StoredResponse | None = None
        previous_id = original.get("previous_response_id")
        if previous_id is not None:
            self.previous = await gw.responses.get(self.caller.team.name, previous_id)
            if self.previous is None:
                raise errors.previous_response_not_found(previous_id)
            if self.previous.native and self.previous.context_tokens <= 0:
                await self.count_before_reading()
                self.previous = await self.upstream_context(previous_id)
        self._chat: dict[str, Any] | None = None
        self._prompt: dict[ImageInputTokens, int] = {}
        self._untranslatable = False
        self._history: list[dict[str, Any]] = []
        # What routing reads: the conversation as chat messages, the model, whether it streams.
        self.payload = {
            "model": original["model"],
            "stream": original.get("stream") is True,
            "messages": self.routing_messages(),
        }

    def fitted(self, routed: Routed | None) -> Routed | None:
        """A route to a model the gateway translates for, when the request asks for what
        translation cannot carry: the policy's general model instead, when that one serves the
        Responses API natively (as a request with images goes to it), since the model routed
        to would only answer 400."""
        need = self.native_need()
        if routed is None or not need:
            return routed
        policy = self.gw.config.routing.policies[routed.policy]
        decision, general = routed.decision, policy.general_model
        if self.native(decision.model) or not self.native(general):
            return routed
        effort, why = heuristic.effort_in_band(policy.general_effort, 0.0, 0.0, 1.0)
        reasons = (
            *decision.reasons,
            f"{need}: only a model serving the Responses API itself takes it: {general}",
            *((why,) if why else ()),
        )
        return Routed(
            routed.policy,
            heuristic.Decision(general, decision.score, decision.domain, reasons, effort),
        )

    def native_need(self) -> str:
        """What the request asks that a translated answer cannot give ("": nothing)."""
        if self.original.get("background") is True:
            return "background"
        if self.original.get("prompt") is not None:
            return "a stored prompt template"
        if self._untranslatable:
            return "tools or items chat completions cannot carry"
        return ""

    def native(self, label: str) -> bool:
        """Whether the model `label` (or the successor serving it) has the Responses API."""
        substituted = successor_of(self.gw, label)
        model = self.gw.config.models.get(substituted.new if substituted is not None else label)
        return model is not None and model.capabilities.responses_api

    def history(self) -> list[dict[str, Any]]:
        """Earlier items of the conversation: of responses the gateway translated, from its
        store; of upstream's, once read from upstream (`read_upstream_history`)."""
        previous = self.previous
        if previous is not None and not previous.native:
            return previous.history()
        return self._history

    def chat_request(self) -> dict[str, Any]:
        """The request as chat completions (made once; it raises for what chat cannot carry)."""
        if self._chat is None:
            self._chat = responses_chat.chat_request(self.original, self.history())
        return self._chat

    def routing_messages(self) -> list[Any]:
        try:
            messages = self.chat_request().get("messages")
        except GatewayError:
            # Tools or items chat cannot carry (a native model may still serve them): route on
            # the text alone.
            self._untranslatable = True
            given = self.original.get("input")
            messages = [{"role": "user", "content": given if isinstance(given, str) else ""}]
        return messages if isinstance(messages, list) else []

    def prompt_tokens(self, images: ImageInputTokens) -> int:
        """The input's tokens, counted as the chat path counts them (images at their most, by
        the serving model's `images` figures), plus the tool and structured output schemas and
        the context an upstream-stored previous response brings along."""
        # By the figures: a fallback model may bill the same images at others.
        count = self._prompt.get(images)
        if count is None:
            messages = self.payload["messages"]
            count = tokens.count_messages(messages) + image_tokens(messages, images)
            # Images a function's output hands the model: upstream reads them, chat drops them.
            given = self.original.get("input")
            items = [*self.history(), *(given if isinstance(given, list) else ())]
            count += function_output_images(items, images)
            if self._untranslatable:
                # The messages routed on miss what chat cannot carry, and the conversation of
                # a response the gateway translated, which it spells out for upstream; upstream
                # reads it all.
                count = max(count, responses_input_tokens(self.original, images))
                if self.previous is not None and not self.previous.native:
                    count += responses_input_tokens({"input": self.history()}, images)
            tools = self.original.get("tools")
            if tools:
                count += tokens.count_text(orjson.dumps(tools).decode())
            text = self.original.get("text")
            count += format_tokens(text.get("format") if isinstance(text, dict) else None)
            if self.previous is not None and self.previous.native:
                count += max(self.previous.context_tokens, 0)
            self._prompt[images] = count
        return count

    async def serve_model(self, label: str) -> Response:
        gw = self.gw
        model = self.tuned or gw.config.models[label]
        caps = gw.learned.effective(self.lesson(model), model.capabilities, time.monotonic())
        if caps.responses_api:
            attempt = NativeAttempt(self, label, model, caps)
            try:
                return await attempt.run()
            finally:
                self.tried_by(attempt)
        return await self.translated(label)

    # -- by translation --------------------------------------------------------------------------

    async def translated(self, label: str) -> Response:
        """Serve through the chat path, and translate its answer back."""
        original = self.original
        # Its chat form carries none of these upstream: refused here as upstream would.
        refused = validation.responses_extras_error(original)
        if refused is not None:
            raise refused
        if original.get("background") is True:
            raise errors.translated_unsupported("background", label)
        if original.get("prompt") is not None:
            raise errors.translated_unsupported("prompt", label)
        if self.previous is not None and self.previous.native and not self._history:
            # The conversation so far lives upstream; this model's turn needs it spelled out.
            await self.count_before_reading()
            self._history = await self.read_upstream_history(original["previous_response_id"])
            self._chat = None
        self.payload = self.chat_request()
        self.body = orjson.dumps(self.payload)
        response = await super().serve_model(label)
        self.exchange.patches = (*self.exchange.patches, "responses_api")
        response.raw_headers.append(TRANSLATED)
        if response.status_code != 200:
            return response  # errors read the same on both APIs
        response_id, created_at = new_id("resp_"), int(time.time())
        if original.get("stream") is not True:
            answer = responses_chat.response_object(
                orjson.loads(response.body), original, response_id=response_id,
                created_at=created_at, new_id=new_id,
            )  # fmt: skip
            await self.keep(answer)
            return rebodied(response, orjson.dumps(answer), JSON)
        serving = self.tuned or self.gw.config.models[label]
        stream = EventStream(
            original, response_id=response_id, created_at=created_at, new_id=new_id,
            model=serving.upstream,
            obfuscation_key=obfuscation.key_for(original.get("stream_options")),
        )  # fmt: skip
        if isinstance(response, StreamingResponse):
            response.body_iterator = self.events(stream, response.body_iterator)
            return response
        # A faked stream whose answer came within the grace period: all its events at once.
        body = stream.start() + stream.feed(bytes(response.body)) + stream.finish()
        await self.keep(stream.response)
        return rebodied(response, body, sse.CONTENT_TYPE)

    async def count_before_reading(self) -> None:
        """Count the request against the team's request limits before it reads upstream what
        the conversation it continues holds (up to `MAX_CHAIN` responses and every page of
        their items): a request refused after those reads (over a limit or the budget) has
        called upstream all the same, and one over the limits reads nothing. Its tries, and a
        cache hit, do not count it again (`tried`); one a try counted already is not."""
        if self.tried:
            return
        attempt = attempt_for(self.request, self.caller, "/responses")
        await counted(attempt, budget=True)
        if attempt.ticket is not None:
            self.tried += (attempt.ticket.plan,)

    async def read_upstream_history(self, response_id: str) -> list[dict[str, Any]]:
        """The items of a conversation upstream stores, oldest first: each response's input
        items and output, back along its `previous_response_id` chain (items that appear in
        several turns counted once). The reads are counted as a list's (`CountedReads`)."""
        turns: list[list[dict[str, Any]]] = []
        next_id: Any = response_id
        reads = CountedReads(self.request, self.caller, PATH)
        for _ in range(MAX_CHAIN):
            if not isinstance(next_id, str):
                break
            await reads.one()
            response = await self.read_upstream(f"/responses/{next_id}", b"")
            items: list[dict[str, Any]] = []
            after = b""
            while True:
                await reads.one()
                page = await self.read_upstream(
                    f"/responses/{next_id}/input_items", b"order=asc&limit=100" + after
                )
                items += page.get("data") or []
                if not page.get("has_more") or not page.get("last_id"):
                    break
                after = b"&after=" + str(page["last_id"]).encode()
            turns.append([*items, *(response.get("output") or [])])
            next_id = response.get("previous_response_id")
        seen: set[Any] = set()
        history: list[dict[str, Any]] = []
        for item in (item for turn in reversed(turns) for item in turn):
            key = item.get("id") or id(item)
            if key not in seen:
                seen.add(key)
                history.append(item)
        return history

    async def upstream_context(self, response_id: str) -> StoredResponse:
        """An upstream-stored response whose context the gateway never saw (a background one
        answers before its usage exists), as upstream tells it once it ended; one that has not
        ended yet has an unknown context (`UNKNOWN_CONTEXT`), which the next call may fill."""
        answer = await self.read_upstream(f"/responses/{response_id}", b"")
        used = usage_from(answer.get("usage")) if answer.get("status") in ENDED else None
        context = (
            chained_context(answer, used.total_tokens) if used is not None else UNKNOWN_CONTEXT
        )
        return StoredResponse(native=True, context_tokens=context)

    async def read_upstream(self, path: str, query: bytes) -> dict[str, Any]:
        gw = self.gw
        headers = gw.upstream_headers(self.request.scope["headers"], self.caller.team)
        resp = await gw.upstream.send("GET", path, query, headers, b"")
        try:
            content = await resp.read()
        finally:
            await resp.close()
        answer = orjson.loads(content) if resp.status == 200 else None
        if not isinstance(answer, dict):
            raise errors.previous_response_not_found(str(self.original["previous_response_id"]))
        return answer

    async def events(
        self, stream: EventStream, chunks: AsyncIterable[str | bytes | memoryview]
    ) -> AsyncIterator[bytes]:
        """The chat stream as Responses events. The response is stored before its terminal
        event leaves, so a client that reads it can fetch the response at once."""
        try:
            yield stream.start()
            async for chunk in chunks:
                out = stream.feed(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
                if stream.done:
                    await self.keep(stream.response)
                if out:
                    yield out
            if not stream.done:
                out = stream.finish()
                await self.keep(stream.response)
                if out:
                    yield out
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()  # the chat relay settles the charge as it closes

    async def keep(self, answer: dict[str, Any] | None) -> None:
        """Store a response the gateway made, unless the client said `store: false`."""
        if answer is None or self.original.get("store") is False:
            return
        record = StoredResponse(
            native=False,
            response=answer,
            input_items=responses_chat.input_items(self.original, new_id),
            earlier=self.history(),
        )
        team = self.caller.team.name
        try:
            await self.gw.responses.put(team, record)
        except (RedisError, OSError) as exc:
            # Upstream answered, and billed it: the client gets it (a 500 would be sent again
            # and billed again), though it cannot be read back or continued.
            log.error("cannot store response %s: %r", answer.get("id"), exc)
            return
        self.gw.responses.own_items(team, item_ids(record.input_items) + output_item_ids(answer))


class NativeAttempt(ModelAttempt):
    """One try at a model whose upstream serves the Responses API: patch, admit, forward."""

    __slots__ = ("meter", "patches", "req", "spelled_items", "spelled_out")

    def __init__(self, req: ResponsesRequest, label: str, model: ModelConfig, caps: Capabilities):
        super().__init__(
            req.gw, req.request, req.exchange, req.caller, PATH, label, model, caps, req.tier,
            req.tried, req.named(label),
        )  # fmt: skip
        self.req = req
        self.leaving = req.leaving
        self.patches: tuple[str, ...] = ()
        # The `previous_response_id` whose conversation the gateway spelled out for upstream,
        # and how many of its items went before the client's input.
        self.spelled_out: str | None = None
        self.spelled_items = 0
        self.meter: ResponsesStreamMeter | None = None

    def patch(self) -> None:
        """The request as this model's upstream takes it: its snapshot name, parameters it
        refuses dropped, and a conversation the gateway holds spelled out in full."""
        req, gw = self.req, self.gw
        payload = dict(req.original)
        if payload.get("prompt") is not None:
            req.fees = tool_fees(payload, gw.config.hosted_tools, stored_prompt=True)
        given = payload.get("reasoning")
        effort = req.effort_for(self.model or "")
        if effort and not (isinstance(given, dict) and given.get("effort") is not None):
            payload["reasoning"] = {
                **(given if isinstance(given, dict) else {}),
                "effort": effort,
            }
        history = req.history()
        if history:
            given = responses_chat.input_items(req.original, new_id)
            payload["input"] = [_as_input(item) for item in (*history, *given)]
            self.spelled_out = payload.pop("previous_response_id")
            self.spelled_items = len(history)
        if gw.config.compat.enabled and not self.caller.team.strict:
            payload, self.patches = patches.rewrite_responses(
                payload, self.caps, reasoning=self.config.reasoning
            )
            if self.patches:
                self.exchange.patches = self.patches
                gw.after_response(gw.metrics.count_patches, self.model, self.patches)
        payload["model"] = self.config.upstream
        if req.fees.injected:
            # Bounds the calls upstream makes, and so what is held for them.
            payload["max_tool_calls"] = req.fees.max_calls
        own = payload.get("safety_identifier")
        payload["safety_identifier"] = gw.safety_identifier(
            self.caller.team.name, own if isinstance(own, str) else None
        )
        ask_served_tier(payload)
        self.stream = payload.get("stream") is True
        self.body = orjson.dumps(payload)

    async def hold(self) -> None:
        requested = self.req.original.get("max_output_tokens")
        images = self.config.image_input_tokens
        if len(self.body) > tokens.OFF_LOOP_BYTES:
            prompt = await self.gw.count_off_loop(self.req.prompt_tokens, images)
        else:
            prompt = self.req.prompt_tokens(images)
        original, previous, carried = self.req.original, self.req.previous, self.req.carried
        unknown = previous is not None and previous.context_tokens == UNKNOWN_CONTEXT
        prompt += carried or 0
        given = original.get("input")
        if (
            unknown or carried is None or original.get("prompt") is not None
            or reads_files(given) or refers_to_items(given)
            or runs_free_tools(original.get("tools"))
        ):  # fmt: skip
            # A stored prompt template's text, a file's pages, an item given back by
            # reference, the conversation of a response still running upstream, the
            # reasoning of a reasoning item whose response's usage was never read, or the tool
            # list a remote MCP server gives (imported, and billed as input, whatever
            # `max_tool_calls` says) are upstream's to read, their length unknown here; they
            # can fill the context, so that is what is held.
            prompt = max(prompt, self.config.context)
        fees = self.req.fees
        await self.hold_worst_case(
            prompt, requested, early=True, fees=fees.worst_case, passes=self.passes_tokens(fees)
        )

    def answer_fees(self, answer: dict[str, Any] | None) -> int:
        output = answer.get("output") if answer is not None else None
        return self.charged_calls(
            self.req.fees, call_counts(output) if isinstance(output, list) else {}
        )

    def stream_fees(self, meter: StreamMeter) -> int:
        if not isinstance(meter, ResponsesStreamMeter):
            return 0
        return self.charged_calls(self.req.fees, meter.hosted_calls())

    async def answer(self) -> Response:
        response = await self.forward(self.body, self.stream, prepared=self.prepared())
        if self.patches:
            response.raw_headers.append((b"x-gateway-patched", ",".join(self.patches).encode()))
        previous = self.spelled_out
        if response.status_code != 200:
            return response
        if isinstance(response, StreamingResponse):
            if previous is not None:
                response.body_iterator = restore_previous(response.body_iterator, previous)
            return response
        answer = self.answered  # parsed as it was read
        if answer is None:
            return response
        self.own(answer)
        # Upstream saw the whole conversation, if spelled out; the client asked to continue one.
        return answered_as_shown(response, answer, previous, self.told)

    def own(self, answer: dict[str, Any]) -> None:
        """Record the team as the owner of a response upstream stores. A background response
        reports no usage yet: its hold goes to the follower, which charges the usage it reports
        once it ends, at the price of the service tier it says served it (without a follower,
        it is charged its worst case)."""
        ticket = self.ticket
        if answer.get("background") is True and ticket is not None:
            response_id = answer.get("id")
            if not (isinstance(response_id, str) and self.follow(ticket, response_id)):
                ticket.settle_at_reserve()
        response_id = answer.get("id")
        if not isinstance(response_id, str):
            return
        usage = answer.get("usage")
        total = usage.get("total_tokens") if isinstance(usage, dict) else 0
        context = chained_context(answer, total) if isinstance(total, int) and total else 0
        record = self.owned_items if answer.get("store") is False else self.owned
        record(response_id, context, output_item_ids(answer))

    def follow(self, ticket: Ticket, response_id: str) -> bool:
        """Hand a background response's hold to the follower (if there is one), which charges
        it the usage the response reports once it ended; False: no follower."""
        follower = self.gw.follower
        if follower is None:
            return False
        ticket.hand_over()
        team = self.caller.team
        tiers = other_tiers(self.untiered, self.tier, self.gw.config.admission.service_tiers)
        follower.follow_soon(
            "response", response_id, team.name, team.upstream_key_env, ticket.plan,
            ticket.taken_back, written=ticket.written, price=asdict(self.config.price),
            fees=self.req.fees.record(),
            tier_prices={name: asdict(price) for name, price in tiers.items()},
        )  # fmt: skip
        return True

    def settle_stream(self, meter: StreamMeter, *, stopped: bool = False) -> None:
        """A background response's stream that ended without its usage (broken by a reset, a
        stall, or ended early): the response runs to its end upstream all the same, and is
        billed whole, so the follower charges the usage it then reports, not the hold."""
        ticket = self.ticket
        if (
            ticket is not None and not ticket.done and meter.usage is None
            and self.req.original.get("background") is True
            and isinstance(meter, ResponsesStreamMeter) and meter.response_id
            and self.follow(ticket, meter.response_id)
        ):  # fmt: skip
            return
        super().settle_stream(meter, stopped=stopped)

    def read_to_end(self) -> bool:
        """A background response runs to its end upstream whoever reads its stream (its client
        may pick it up again with `GET ?stream=true`), and is billed whole."""
        return self.req.original.get("background") is True or super().read_to_end()

    def stream_meter(self, strip_usage: bool) -> StreamMeter | None:
        # Also when not admitted: it finds the response's id, for its owner record.
        owner = self.owned_items if self.req.original.get("store") is False else self.owned
        self.meter = ResponsesStreamMeter(owner)
        return self.meter

    def ended_early(self, meter: StreamMeter, tail: bytes) -> bool:
        # A Responses stream ends in its terminal event (`response.completed`, ...) or `error`.
        return isinstance(meter, ResponsesStreamMeter) and meter.final is None and not meter.failed

    def winds_down(self, meter: StreamMeter, chunk: bytes) -> bool:
        # After its last text, a response's events close its part, its item and then the
        # response, with the usage that bills it exactly; a next item is closed at its start.
        return isinstance(meter, ResponsesStreamMeter) and meter.closing

    def stream_error(self, exc: GatewayError, meter: StreamMeter | None) -> bytes:
        if not isinstance(meter, ResponsesStreamMeter):
            return super().stream_error(exc, meter)
        return errors.responses_stream_error(exc, meter.response, meter.events)

    def owned(self, response_id: str, context_tokens: int, items: list[str]) -> None:
        """The answer named its response (and, at its end, the tokens of its context and its
        output items): the team's."""
        self.gw.responses.own(
            self.caller.team.name, response_id, context_tokens, self.spelled_out,
            self.spelled_items,
        )  # fmt: skip
        self.owned_items(response_id, context_tokens, items)

    def owned_items(self, response_id: str, context_tokens: int, items: list[str]) -> None:
        """The response's output items are the team's to give back, also those of a response
        upstream does not store (`store: false`): what upstream makes of their ids is its own.
        Its reasoning items, once it ended, with the reasoning tokens they carry."""
        team = self.caller.team.name
        self.gw.responses.own_items(team, items)
        ended = self.meter.final if self.meter is not None else self.answered
        if items and ended is not None:
            self.gw.responses.note_reasoning(team, reasoning_carried(ended))


def _as_input(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item sent upstream as input: without the ids the gateway made, which upstream
    would look for among its own items."""
    return {k: v for k, v in item.items() if k not in ("id", "status")}
