"""Endpoints served by one generic handler, as their row in the endpoint table says: the model
the request names checked against the team's tier and allowlist (a model without a price in
config is not served), the worst case held, the call forwarded once to the canonical path, and
the charge settled by the row's rule: to the usage upstream reports at the model's price, or
by the model's per-unit prices (images, characters of speech, minutes of audio).

Token-priced audio models (gpt-4o-mini-tts, gpt-4o transcription) price text and audio tokens
apart; their event streams (speech `stream_format: sse`, transcription `stream`) are relayed as
they come and charged from their done event's usage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission import pricing
from gateway.admission.plan import model_allowed
from gateway.admission.pricing import audio_tokens_cost
from gateway.config import ModelConfig
from gateway.endpoints.attempt import Attempt, error_answer, rebodied
from gateway.endpoints.owned import check_references
from gateway.endpoints.route import (
    SUBSTITUTED,
    count_substitution,
    refuse_shut_down,
    successor_of,
)
from gateway.endpoints.tuned_models import fine_tuned
from gateway.observability.record import Exchange
from gateway.runtime.gateway import Gateway
from gateway.server.body import parse_json_object, read_body, read_form_body, written
from gateway.server.caller import Caller, identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.translate import audio_formats
from gateway.translate.audio_formats import SPEECH_MEDIA_TYPES
from gateway.wire import audio_length, errors
from gateway.wire.errors import GatewayError
from gateway.wire.multipart import Part, field, field_values, with_field
from gateway.wire.tokens import OFF_LOOP_BYTES, count_text
from gateway.wire.usage import (
    AudioStreamMeter,
    StreamMeter,
    TextStreamMeter,
    ask_usage_chunk,
    audio_answer_usage,
    audio_usage_from,
    usage_from,
)

Handler = Callable[[Request], Awaitable[Response]]


class Cost(Enum):
    """How an endpoint's call is held before and charged after."""

    # Input tokens at the input price; settled to `usage`.
    EMBEDDINGS = "embeddings"
    # The prompt, and `max_tokens` for each of `best_of` (at least `n`) candidates; settled to
    # `usage`, which counts every candidate.
    COMPLETIONS = "completions"
    # `n` images at the model's price for the quality and size (DALL-E: settled to the images
    # made), or the prompt and the images' output tokens (GPT image models: settled to `usage`).
    IMAGES = "images"
    # Characters of input at the model's character price: known before the call. Or (a model
    # with token prices) the input's text tokens and a bound of audio tokens a character;
    # settled to the `usage` of a `stream_format: sse` answer (raw audio is charged the hold).
    SPEECH = "speech"
    # The longest the uploaded audio can play (`audio_length`) at the minute price; settled to
    # the seconds the answer reports (an answer that does not say is charged what was held). Or
    # (a model with token prices) the prompt, that audio's audio tokens and the longest
    # transcript; settled to the `usage` reported.
    TRANSCRIPTION = "transcription"
    # Nothing to pay (moderations): counted against the request limits.
    FREE = "free"


@dataclass(frozen=True, slots=True)
class Governed:
    """The row's rules, for the generic handler."""

    cost: Cost
    # The model used when the request names none (moderations), or None: a model is required.
    default_model: str | None = None
    # The model is a field of a multipart form (audio uploads), not of a JSON body.
    form: bool = False
    # What OpenAI would refuse in the JSON body, refused before anything reads it (None: a form).
    check: Callable[[dict[str, Any]], None] | None = None


def governed(rules: Governed) -> Handler:
    async def handle(request: Request) -> Response:
        return await serve(request, rules)

    return handle


async def serve(request: Request, rules: Governed) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    body = await read_body(request, gw.config.server.max_body_bytes)
    content_type = request.headers.get("content-type", "")
    parts: list[Part] | None = None
    if rules.form:
        payload: dict[str, Any] = {}
        parts = read_form_body(body, content_type) or []
        name: Any = field(parts, "model")
        for named in ("response_format", "stream"):
            payload[named] = field(parts, named)
        # Upstream reads and bills a prompt of any length, whichever of its parts it takes
        # (a file part of its name too): the one of the most tokens is held.
        prompts = [value.decode("utf-8", "replace") for value in field_values(parts, "prompt")]
        if sum(map(len, prompts)) > OFF_LOOP_BYTES:
            payload["prompt"] = await gw.count_off_loop(longest, prompts)
        else:
            payload["prompt"] = longest(prompts)
    else:
        payload = parse_json_object(request, body)
        if rules.check is not None:
            rules.check(payload)
        body = written(payload)  # what upstream reads is what was checked (`read_json_object`)
        trace = exchange_of(request.scope).trace
        if trace is not None:
            trace.request(payload)
        await check_references(gw, caller, body, payload)
        name = payload.get("model", rules.default_model)
    if not isinstance(name, str) or not name:
        raise errors.missing_model()
    exchange = exchange_of(request.scope)
    substituted = successor_of(gw, name)
    if substituted is not None:
        if not model_allowed(gw.config, caller.team, substituted.old):
            raise errors.model_not_found(name)
        if rules.form:  # a multipart body is sent as it came: nothing renames its model
            raise errors.model_shut_down(name, substituted.shutdown, substituted.new)
        exchange.substituted = substituted.header
        count_substitution(gw, substituted)
        name = substituted.new
        payload = {**payload, "model": gw.config.models[name].upstream}
        body = orjson.dumps(payload)
    found = gw.models.get(name) or await fine_tuned(gw, caller, name)
    if found is None or not (substituted or model_allowed(gw.config, caller.team, found[0])):
        raise errors.model_not_found(name)
    label, model = found
    if substituted is None:
        refuse_shut_down(gw, name, label, model)  # a fine-tune of a shut-down base
        if name != model.upstream:
            # Checked and priced as the model its config names upstream, and asked for it:
            # sent on, the configured name may be no model upstream, or another one.
            payload = {**payload, "model": model.upstream}
            body = (
                with_field(body, content_type, "model", model.upstream)
                if rules.form
                else written(payload)
            )
    if rules.cost is not Cost.FREE and not model.priced:
        raise errors.model_not_found(name)  # not priced: never served free
    # Asked for (a shut-down model's name, as chat counts it) and served.
    exchange.model = substituted.old if substituted is not None else label
    exchange.routed_model = label
    attempt = GovernedAttempt(gw, request, exchange, caller, label, model, rules.cost, payload)
    attempt.named = substituted.old if substituted is not None else ""
    attempt.size = len(body)
    if parts is not None:
        attempt.files = field_values(parts, "file")
    try:
        if gw.config.admission.enabled:
            await attempt.hold()
            body = attempt.ask_usage(body, parts, content_type)
        response = await attempt.forward(
            body, stream=attempt.streams(), strip_usage=attempt.strip_usage
        )
        response = attempt.as_asked(response)
    except GatewayError as exc:
        if substituted is not None:
            exc.headers[SUBSTITUTED] = substituted.header
        attempt.failed(exc)
        raise
    if substituted is not None:
        response.headers[SUBSTITUTED] = substituted.header
    return response


def longest(prompts: list[str]) -> str | None:
    """The prompt of the most tokens."""
    return max(prompts, key=count_text, default=None)


class GovernedAttempt(Attempt):
    """One call of a governed endpoint: held by its cost rule, settled by it."""

    __slots__ = (
        "asked", "audio_tokens", "config", "cost", "files", "label", "named", "payload",
        "rendered", "size", "strip_usage",
    )  # fmt: skip

    def __init__(
        self,
        gw: Gateway,
        request: Request,
        exchange: Exchange,
        caller: Caller,
        label: str,
        config: ModelConfig,
        cost: Cost,
        payload: dict[str, Any],
    ) -> None:
        # Canonical: `Entry` refused every other spelling of the path.
        path = request.scope["path"][len("/v1") :]
        super().__init__(gw, request, exchange, caller, path, model=None)
        self.label = label
        self.config = config
        self.cost = cost
        self.payload = payload
        self.audio_tokens = by_tokens(cost, config)
        # An upload's audio: every part named `file` (any may be the one upstream reads).
        self.files: list[bytes] = []
        # The form the client asked an audio answer in, when upstream is asked another that
        # reports its usage (`ask_usage`), and the answer rendered back in it.
        self.asked: str | None = None
        self.rendered: tuple[bytes, str] | None = None
        self.size = 0  # the request body's bytes: a large one is counted off the event loop
        # The shut-down model the request named, which `label` serves: its limits apply too.
        self.named = ""
        # A legacy completion's stream asks upstream for the usage chunk its client did not
        # ask for (`ask_usage`): kept from the client.
        self.strip_usage = False

    def upstream_model(self) -> str:
        return self.config.upstream

    def streams(self) -> bool | None:
        """False: the answer is read whole, to its end, whoever leaves (upstream bills it
        whole). None: the caller asked a token-priced audio model for an event stream
        (whisper-1 ignores `stream`), or a legacy completion for a stream: relayed as it comes
        if upstream answers with one."""
        payload = self.payload
        if self.cost is Cost.COMPLETIONS:
            # A legacy completion's stream: relayed as it comes, billed for what was generated.
            return None if payload.get("stream") is True else False
        if not self.audio_tokens:
            return False
        if self.cost is Cost.SPEECH:
            asked = payload.get("stream_format") == "sse"
        else:
            asked = str(payload.get("stream")).lower() == "true"
        return None if asked else False

    def read_to_end(self) -> bool:
        """A token-priced audio event stream is billed whole, whoever reads it (upstream has
        all the audio or text it was sent), and only its done event says how many audio tokens
        that was: read to its end, it is charged exactly that, where its whole hold would be
        charged had the gateway stopped reading."""
        return self.audio_tokens and self.streams() is None

    async def hold(self) -> None:
        gw, model = self.gw, self.config
        seconds = 0
        if self.cost is Cost.TRANSCRIPTION and self.files:
            # A pass over up to the whole body (tens of ms for most 25 MB files, a few hundred
            # for a hostile one): off the event loop, one upload at a time (`Gateway.audio_reads`).
            async with gw.audio_reads:
                seconds = await asyncio.to_thread(
                    longest_audio, self.files, gw.config.admission.audio_min_bitrate
                )
        if self.size > OFF_LOOP_BYTES:
            prompt, completion, reserve = await gw.count_off_loop(
                worst_case, self.cost, self.payload, model, seconds
            )
        else:
            prompt, completion, reserve = worst_case(self.cost, self.payload, model, seconds)
        shape = gw.plan_shapes().get(
            self.caller.team,
            self.caller.key,
            self.label,
            endpoint=self.exchange.endpoint,
            named=self.named,
        )
        plan = shape.plan(gw.new_hold_id(), prompt + completion, reserve)
        await self.admit(plan, model.price, prompt)

    def failed(self, exc: GatewayError) -> None:
        ticket = self.ticket
        if ticket is not None and exc.status == 499 and self.audio_tokens:
            # The caller left a stream before its answer began: upstream may have read all the
            # audio (or spoken all the text), and the gateway cannot see how many tokens.
            ticket.settle_at_reserve()
        super().failed(exc)

    def stream_meter(self, strip_usage: bool) -> StreamMeter | None:
        if self.ticket is None:
            return None
        if self.cost is Cost.COMPLETIONS:
            return TextStreamMeter(strip_usage)
        return AudioStreamMeter()

    def ended_early(self, meter: StreamMeter, tail: bytes) -> bool:
        if isinstance(meter, TextStreamMeter):
            return meter.ended_before_usage(tail)
        return isinstance(meter, AudioStreamMeter) and not meter.ended

    def settle_stream(self, meter: StreamMeter, *, stopped: bool = False) -> None:
        if isinstance(meter, AudioStreamMeter):
            if self.ticket is not None and not self.ticket.done:
                self.charge_audio(meter.reported)
        else:
            super().settle_stream(meter, stopped=stopped)

    def charge_audio(self, reported: Any) -> None:
        """Charge a token-priced audio call its reported usage, text and audio tokens each at
        their price. Raw audio, a format without usage or a stream cut short do not say how
        many audio tokens there were: the hold is charged, never less than upstream bills."""
        ticket = self.ticket
        assert ticket is not None
        used = audio_usage_from(reported, speech=self.cost is Cost.SPEECH)
        if used is None:
            ticket.charge(ticket.plan.reserve)
        else:
            ticket.charge(audio_tokens_cost(self.config.price, used), used.usage)

    def ask_usage(self, body: bytes, parts: list[Part] | None, content_type: str) -> bytes:
        """The body to send: an audio call whose answer, as asked, would not say what it cost
        (raw speech audio, a transcript as text, a whisper-1 translation as JSON) asks upstream
        for the form that does, which upstream bills the same (`audio_formats`); a legacy
        completion's stream asks for its usage chunk (`strip_usage`)."""
        payload = self.payload
        if self.cost is Cost.COMPLETIONS and payload.get("stream") is True:
            streamed = dict(payload)
            self.strip_usage = ask_usage_chunk(streamed)
            return orjson.dumps(streamed) if self.strip_usage else body
        if self.cost is Cost.SPEECH and self.audio_tokens:
            asked = payload.get("response_format", "mp3")
            raw = payload.get("stream_format", "audio") == "audio"
            if raw and type(asked) is str and asked in SPEECH_MEDIA_TYPES:
                self.asked = asked
                return orjson.dumps({**payload, "stream_format": "sse"})
        elif self.cost is Cost.TRANSCRIPTION and parts is not None:
            asked = payload.get("response_format") or "json"
            # Asked twice, streamed or with fields only some forms take: sent as it came.
            plain = all(
                part.name
                not in ("response_format", "stream", "include[]", "timestamp_granularities[]")
                or (part.name == "response_format" and payload.get("response_format"))
                for part in parts
            )
            upstream = audio_formats.transcript_upstream_format(
                asked, by_minute=not self.audio_tokens,
                translation=self.path.endswith("/translations"),
            )  # fmt: skip
            if plain and upstream is not None:
                self.asked = asked
                return with_field(body, content_type, "response_format", upstream)
        return body

    def as_asked(self, response: Response) -> Response:
        """The answer in the form its client asked (`ask_usage`), rendered by `read_answer`."""
        rendered = self.rendered
        if rendered is None:
            return response
        out = rebodied(response, *rendered)
        out.raw_headers.append((b"x-gateway-patched", b"response_format"))
        return out

    def read_answer(self, status: int, content: bytes) -> None:
        """A 200 that is an error object fails (`error_answer`), as does one asked in another
        form (`ask_usage`) that is not that form. No answer of these APIs begins with an
        `error`: only such a body is parsed here, the rest once, in `settle`."""
        asked = self.asked
        if asked is not None and status == 200:
            if self.cost is Cost.SPEECH:
                self.rendered = audio_formats.speech_audio(content, asked)
            else:
                self.rendered = audio_formats.transcript_as(asked, content)
            if self.rendered is None:
                self.gw.metrics.upstream_errors.labels("upstream_invalid_answer").inc()
                raise errors.upstream_invalid_answer(
                    f"{len(content)} bytes that are not the {asked} asked for"
                )
        if status != 200 or b'"error"' not in content[:16]:
            return
        answer = _json(content)
        exc = error_answer(answer, own_key=self.own_key) if isinstance(answer, dict) else None
        if exc is not None:
            self.gw.metrics.upstream_errors.labels(exc.code or "").inc()
            raise exc

    def settle(self, status: int, content: bytes) -> None:
        ticket, cost, model = self.ticket, self.cost, self.config
        if ticket is None or status >= 400 or cost is Cost.FREE:
            super().settle(status, content)
            return
        if self.audio_tokens:
            self.charge_audio(audio_answer_usage(content))
            return
        if cost is Cost.SPEECH:
            ticket.charge(pricing.speech_cost(self.payload, model))
            return
        answer = _json(content)
        fixed = None
        if cost is Cost.IMAGES:
            fixed = pricing.images_cost(self.payload, model, answer)
        elif cost is Cost.TRANSCRIPTION:
            fixed = pricing.audio_cost(model, answer)
        if fixed is not None:
            ticket.charge(fixed)
            return
        used = usage_from(answer.get("usage")) if isinstance(answer, dict) else None
        if used is None:
            # An answer that does not say what it cost (a stream asked for, a format without
            # usage) is charged what was held: never less than upstream may bill.
            ticket.charge(ticket.plan.reserve)
        else:
            ticket.settle(used)


def worst_case(
    cost: Cost, payload: dict[str, Any], model: ModelConfig, audio_seconds: int = 0
) -> tuple[int, int, int]:
    """(prompt tokens, completion tokens, micro-dollars) of the most the call can use; a
    transcription's audio plays `audio_seconds` at most (`longest_audio`)."""
    price = model.price
    if cost is Cost.EMBEDDINGS:
        prompt = pricing.input_tokens(payload.get("input"), model.tokenizer)
        return prompt, 0, pricing.worst_case_micros(price, prompt, 0)
    if cost is Cost.COMPLETIONS:
        prompt, completion = pricing.completions_worst_case(payload, model)
        return prompt, completion, pricing.worst_case_micros(price, prompt, completion)
    if cost is Cost.IMAGES:
        prompt, completion, fixed = pricing.images_worst_case(payload, model)
        return prompt, completion, pricing.worst_case_micros(price, prompt, completion) + fixed
    if cost is Cost.SPEECH and not by_tokens(cost, model):
        return 0, 0, pricing.speech_cost(payload, model)
    if cost is Cost.SPEECH:
        used = pricing.speech_tokens_worst_case(payload, model)
        tokens = used.usage
        return tokens.prompt_tokens, tokens.completion_tokens, audio_tokens_cost(price, used)
    if cost is Cost.TRANSCRIPTION and not by_tokens(cost, model):
        return 0, 0, pricing.audio_reserve(model, audio_seconds)
    if cost is Cost.TRANSCRIPTION:
        used = pricing.transcription_tokens_worst_case(payload.get("prompt"), model, audio_seconds)
        # The token limits count the audio once it is reported: at its longest (an hour is
        # 60,000 tokens) it would not fit a per-minute token limit most tiers have.
        return used.text_input, used.text_output, audio_tokens_cost(price, used)
    return 0, 0, 0


def longest_audio(files: list[bytes], min_bitrate: int) -> int:
    """The most seconds any of an upload's files can play: upstream bills the one it reads."""
    floor = max(1, min_bitrate // 8)
    return max((audio_length.longest_seconds(data, floor) for data in files), default=0)


def by_tokens(cost: Cost, model: ModelConfig) -> bool:
    """Speech or a transcription priced by its text and audio tokens (gpt-4o-mini-tts, gpt-4o
    transcription models), not by the character or the minute (tts-1, whisper-1)."""
    if cost is Cost.SPEECH:
        return not model.character_price
    return cost is Cost.TRANSCRIPTION and not model.minute_price


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
