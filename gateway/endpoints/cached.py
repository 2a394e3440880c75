"""The response cache around one chat completions or Responses request, after routing.

A hit is admitted as a request (it counts against the requests-per-minute limits), charged the
configured share of what the answer cost (a free one, the default, is not refused for a budget
spent), and answered in the shape a miss would have had: the answer whole, or replayed as the
stream the client asked for. A miss calls upstream as
usual (or waits for an identical call in flight, and is then a hit) and keeps the answer, read
from the response as the client gets it, when it is whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.admission.plan import Plan, counted_once
from gateway.admission.pricing import cost_micros
from gateway.cache import decision, replay
from gateway.cache.capture import ChatCapture, ResponsesCapture
from gateway.cache.decision import Mode
from gateway.cache.entry import NOTES, Entry, delivered, hit_cost, keepable
from gateway.cache.flights import Flight
from gateway.cache.key import cache_key, scope
from gateway.compat import patches
from gateway.config import ModelConfig
from gateway.endpoints.attempt import Attempt
from gateway.observability.record import Exchange
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller
from gateway.server.stream_response import StreamResponse, cancel_on_disconnect
from gateway.wire import errors, obfuscation, sse
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id
from gateway.wire.usage import usage_from

HEADER = "x-gateway-cache"
RAW_HEADER = HEADER.encode()  # as the ASGI scope holds it
TOOLS_HEADER = "x-gateway-cache-tools"
# Forwarded request headers that steer what upstream answers (beside the operator's prefixes).
STEERING = ("openai-beta",)
# Where a routed request's effort enters the key, among the headers that steer upstream.
ROUTED_EFFORT = "x-gateway-route-effort"
JSON = "application/json"


class CachedRequest:
    """One request the response cache is on for (or was asked off for: `bypass`)."""

    __slots__ = (
        "api", "caller", "effort", "exchange", "flight", "gw", "key", "label", "mode", "model",
        "named", "notes", "payload", "request", "tools", "tried",
    )  # fmt: skip

    def __init__(
        self,
        gw: Gateway,
        request: Request,
        exchange: Exchange,
        caller: Caller,
        api: str,
        payload: dict[str, Any],
        label: str,
        model: ModelConfig,
        effort: str = "",
        tried: tuple[Plan, ...] = (),
        named: str = "",
    ) -> None:
        self.gw, self.request, self.exchange, self.caller = gw, request, exchange, caller
        self.api, self.payload, self.label, self.model = api, payload, label, model
        # The reasoning effort routing asks for: it changes the answer as a parameter would.
        self.effort = effort
        # What counted the request already (a read upstream before it was served): a hit does
        # not count it again (`counted_once`).
        self.tried = tried
        # The shut-down model the request named, which `label` serves: a hit fits its limits too.
        self.named = named
        self.mode = Mode.OFF
        self.tools = False
        self.key = ""
        self.notes: tuple[tuple[str, str], ...] = ()  # the miss's headers its entry keeps
        self.flight: Flight | None = None  # the flight its call leads, if it leads one

    def decide(self, policy: str) -> bool:
        """Whether the cache is on for the request (routed by `policy`, if any): its mode, and
        its key when it may use the cache."""
        gw, caller, api, payload = self.gw, self.caller, self.api, self.payload
        headers = self.request.headers
        asked = headers.get(HEADER)
        if asked is not None:
            asked = asked.strip().lower()
            if asked not in decision.HEADER_VALUES:
                raise errors.invalid_value(HEADER, asked, ("on", "off", "refresh"))
        routed = gw.config.routing.policies.get(policy) if policy else None
        mode = decision.mode(asked, caller.team.cache, routed is not None and routed.cache)
        if mode is Mode.OFF:
            return False
        config = gw.config.cache
        self.tools = config.cache_tools or headers.get(TOOLS_HEADER, "").lower() in ("on", "1")
        if mode is not Mode.BYPASS and (
            not decision.cacheable(api, payload, self.tools)
            or decision.shut_down(self.model.shutdown, gw.today())
        ):
            mode = Mode.BYPASS
        self.mode = mode
        if mode is not Mode.BYPASS:
            steering: dict[str, str] = {}
            for name, value in headers.items():
                # A header given twice goes upstream as its first value (as
                # `upstream_request_headers` sends it): keyed by a later one, its answer
                # would be served to requests that send that one alone.
                if name not in steering and (
                    name in STEERING or name.startswith(gw.extra_forward_prefixes)
                ):
                    steering[name] = value
            if self.effort:
                steering[ROUTED_EFFORT] = self.effort
            where = scope(caller.team.name, config.shared, caller.team.strict)
            self.key = cache_key(
                api, self.label, self.model.upstream, where, payload, steering,
                as_sent=caller.team.strict or not gw.config.compat.enabled,
            )  # fmt: skip
        return True

    async def serve(self, call: Callable[[], Awaitable[Response]]) -> Response:
        """Answer from the cache, or by `call` (upstream), keeping what it answers."""
        mode = self.mode
        flight: Flight | None = None
        if mode is Mode.ON:
            # A wait for an identical call may last minutes: a client that leaves meanwhile
            # is noticed. Joining a call in flight here, the request stops waiting (a 499), and
            # counts no more among those a leader whose own client leaves reads on for.
            # Opening it (first, or elected after a leader failed), it decides or polls on for
            # those who join it, then answers nobody.
            cache, left = self.gw.cache, False
            task = asyncio.current_task()

            def gone(stop: Callable[[], None]) -> None:
                nonlocal left
                if cache.opener_left(self.key, task):
                    left = True
                else:
                    stop()

            async with cancel_on_disconnect(self.request.receive, self.gw.loop, unless=gone):
                turn = await cache.join(self.key, self.caller.team.name)
            if left and not (isinstance(turn, Flight) and await cache.awaited(turn)):
                # Nobody is there to answer: neither a hit nor a call of its own. Given the
                # call, it makes it only for requests of its team waiting for it, as a leader
                # whose client leaves reads on only for them: never for nobody, nor for
                # another team's (a shared cache's), which would have its team pay their answer:
                # they elect one of theirs to make it.
                if isinstance(turn, Flight):
                    cache.finish(turn, None, failed=True)
                raise errors.client_closed()
            if isinstance(turn, Entry):
                try:
                    return await self.hit(turn)
                except GatewayError as exc:
                    exc.headers[HEADER] = "hit"  # refused (a limit), as a miss says `miss`
                    raise
            flight = self.flight = turn
        status = "miss" if mode is Mode.ON else mode.value
        self.exchange.cache = status
        try:
            response = await call()
        except GatewayError as exc:
            exc.headers[HEADER] = status
            self.kept(flight, None, decision.passing(exc.status))
            raise
        except BaseException:
            self.kept(flight, None, failed=True)
            raise
        response.raw_headers.append((HEADER.encode(), status.encode()))
        if mode is Mode.BYPASS:
            return response
        self.gw.after_response(
            self.gw.metrics.count_cache, self.caller.team.name, self.label, False
        )
        return self.capture(response, flight)

    # -- a hit -----------------------------------------------------------------------------------

    async def hit(self, entry: Entry) -> Response:
        """Admit and charge the hit, then answer it as a miss would have been answered."""
        gw, exchange = self.gw, self.exchange
        exchange.cache = "hit"
        exchange.routed_model = self.label
        # Without admission nothing is charged, a hit no more than a miss.
        charge = (
            hit_cost(entry.cost, gw.config.cache.charge_fraction)
            if gw.config.admission.enabled
            else 0
        )
        faked = self.streams_faked()
        headers = [
            (b"x-request-id", new_request_id().encode()),
            (HEADER.encode(), b"hit"),
            (b"x-gateway-cache-age", str(entry.age_s(time.time())).encode()),
            *((name.encode(), value.encode()) for name, value in delivered(entry.notes, faked)),
        ]
        if gw.config.admission.enabled:
            attempt = Attempt(gw, self.request, exchange, self.caller, "", self.label)
            shape = gw.plan_shapes().get(
                self.caller.team,
                self.caller.key,
                self.label,
                endpoint=exchange.endpoint,
                named=self.named,
            )
            plan = shape.plan(gw.new_hold_id(), 0, charge)
            if not charge:
                plan = plan.free()
            await attempt.admit(counted_once(plan, self.tried) if self.tried else plan, None, 0)
            ticket = attempt.ticket
            assert ticket is not None  # admitted, or the refusal was raised
            gw.after_response(ticket.charge, charge)
            headers += [(k.encode(), v.encode()) for k, v in ticket.headers]
        gw.after_response(
            gw.metrics.count_cache, self.caller.team.name, self.label, True, entry.cost - charge
        )
        answer = entry.answer
        if self.api == "responses":
            answer = replay.as_asked(answer, self.echoed())
        if self.payload.get("stream") is True:
            exchange.stream = True
            options = self.payload.get("stream_options")
            options = options if isinstance(options, dict) else {}
            if self.api == "chat":
                usage = options.get("include_usage") is True
                body = replay.chat_stream(answer, include_usage=usage)
            else:
                body = replay.responses_stream(answer, obfuscation.key_for(options))
            response = Response(body, media_type=sse.CONTENT_TYPE)
        else:
            response = Response(orjson.dumps(answer), media_type=JSON)
        response.raw_headers += headers
        return response

    @property
    def by_fallback(self) -> bool:
        """Whether a fallback answered (its answer is never kept for the model the key names)."""
        return self.exchange.routed_model != self.label

    def streams_faked(self) -> bool:
        """Whether the request's miss would have streamed an answer faked from a whole one:
        a streamed chat request (or Responses request translated to one) the model cannot
        stream as asked, patched as the team's requests are."""
        gw, model = self.gw, self.model
        if self.payload.get("stream") is not True or not gw.config.compat.enabled:
            return False
        if self.caller.team.strict or (
            self.api == "responses" and model.capabilities.responses_api
        ):
            return False
        # A Responses request has no stop sequences for the gateway to cut.
        asked = self.payload if self.api == "chat" else {}
        return patches.streams_faked(asked, model.capabilities)

    def echoed(self) -> dict[str, Any]:
        """What a Response object answering this request echoes of it that the key leaves out:
        its `user` and `prompt_cache_key` as sent, and the `safety_identifier` the gateway
        sends upstream for it (its team's, with the caller's own folded in)."""
        payload = self.payload
        given = payload.get("safety_identifier")
        return {
            "user": payload.get("user"),
            "prompt_cache_key": payload.get("prompt_cache_key"),
            "safety_identifier": self.gw.safety_identifier(
                self.caller.team.name, given if isinstance(given, str) else None
            ),
        }

    # -- a miss: what upstream answered, kept -------------------------------------------------------

    def capture(self, response: Response, flight: Flight | None) -> Response:
        found = response.headers.get
        self.notes = tuple((name, value) for name in NOTES if (value := found(name)) is not None)
        if flight is not None and self.by_fallback:
            # A fallback answered: its answer is never kept for the model asked (`entry`). Its
            # waiters go their own way now, not once it ends, and a stream whose client leaves
            # stops as any other, never read on for them.
            self.kept(flight, None)
            flight = None
        if response.status_code != 200:
            self.kept(flight, None, decision.passing(response.status_code))
        elif isinstance(response, StreamingResponse):
            response.body_iterator = self.captured(response.body_iterator, flight)
            if flight is not None and isinstance(response, StreamResponse):
                response.on_close = self.landed(flight, response.on_close)
                if response.on_gone is not None:
                    response.on_gone = self.unless_awaited(flight, response.on_gone)
        else:
            # Kept once its charge is settled (after the response, in the order asked): a hit
            # is charged its share of that. Meanwhile a request for it here waits for it.
            if flight is None:
                flight = self.gw.cache.landing(self.key)
            answer = self.answer_of(bytes(response.body), response)
            self.gw.after_response(self.kept, flight, answer)
        return response

    def answer_of(self, body: bytes, response: Response) -> dict[str, Any] | None:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            capture = ChatCapture() if self.api == "chat" else ResponsesCapture()
            capture.feed_all(body)
            return capture.answer()
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return answer if isinstance(answer, dict) else None

    async def captured(
        self, chunks: AsyncIterable[str | bytes | memoryview], flight: Flight | None
    ) -> AsyncIterator[bytes]:
        """The stream as it goes, gathered into its answer; kept if it ends whole."""
        capture = ChatCapture() if self.api == "chat" else ResponsesCapture()
        answer = None
        try:
            async for chunk in chunks:
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                capture.feed(data)
                yield data
            answer = capture.answer()
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            # None: the stream failed, or stopped when its client left.
            self.kept(flight, answer, failed=answer is None)

    def leaving(self, stop: Callable[[], None]) -> None:
        """The client left before its call's answer began (`Attempt.leaving`). If requests of
        its team wait for this answer (here or on other replicas), the call goes on: the answer
        is kept and is their hit, not called for by each alone, and this request is charged all
        of it, as upstream bills it. Else the call stops (`stop`), as does a fallback's, whose
        answer is never kept."""
        flight = self.flight
        if flight is None or flight.future.done() or self.by_fallback:
            stop()
        else:
            self.gw.cache.unless_awaited(flight, stop)

    def unless_awaited(self, flight: Flight, on_gone: Callable[[], None]) -> Callable[[], None]:
        """The stream response's `on_gone`, unless requests of its team wait for this answer
        (here or on other replicas): the stream is then read on to its end as if its client
        were still there, kept, and their hit; else each would call upstream for it alone. Its
        leader is charged the whole answer, which upstream bills."""
        cache = self.gw.cache
        return lambda: cache.unless_awaited(flight, on_gone)

    def landed(
        self, flight: Flight, on_close: Callable[[], Awaitable[None]] | None
    ) -> Callable[[], Awaitable[None]]:
        """The stream response's `on_close`, then the flight ended if `captured` did not end it:
        a body that never began (its task cancelled while its headers were written) never ran
        its `finally`, and the requests waiting on the flight would wait `coalesce_wait_s`."""

        async def close() -> None:
            try:
                if on_close is not None:
                    await on_close()
            finally:
                if not flight.future.done():
                    self.kept(flight, None, failed=True)

        return close

    def kept(
        self, flight: Flight | None, answer: dict[str, Any] | None, failed: bool = False
    ) -> None:
        """Keep `answer` if it may be kept; the flight, if this request leads one, ends
        (`failed`: with no answer, and its waiters elect another leader)."""
        cache = self.gw.cache
        entry = self.entry(answer) if answer is not None and self.mode is not Mode.BYPASS else None
        if flight is not None:
            cache.finish(flight, entry, failed)
        elif entry is not None:
            cache.keep(self.key, entry)

    def entry(self, answer: dict[str, Any]) -> Entry | None:
        """The entry for a whole answer, with what it cost; None if it may not be kept: cut
        short, given by a fallback (not what the model the key names says), or without the
        usage upstream reported (a stream that never said it)."""
        if self.by_fallback or not keepable(self.api, answer, self.tools):
            return None
        charged = self.exchange.ticket
        usage = usage_from(answer.get("usage"))
        if usage is None and charged is not None and charged.usage is not None:
            # A stream whose client did not ask for its usage chunk: the gateway asked upstream
            # for it, and charged it. Kept as upstream gave it, every detail a hit says again.
            usage = charged.usage
            if usage.reported is None or "prompt_tokens" not in usage.reported:
                # None came: the charge is the gateway's count or the request's hold, which a
                # hit would say as if upstream had reported it.
                return None
            answer = {**answer, "usage": usage.reported}
        if usage is None:
            return None  # what it cost is unknown: a hit could not say what it saved
        if charged is not None and charged.usage is not None:
            # Settled: what the answer was charged, at the service tier that served it, with
            # the fees upstream bills beside its tokens.
            cost = charged.cost
        else:
            cost = cost_micros(self.model.price, usage)
        return self.gw.cache.entry(answer, cost, self.label, self.notes)
