"""One try at serving a request upstream, as one object with named phases: admit, call, relay,
settle.

`Attempt` holds what a try knows (the gateway, the request and its record, the caller, the
ticket once admitted) and does what every endpoint shares. The chat endpoint adds its own
phase before these (patching the request for the model) and its own answers after the call
(emulated tools, faked streams); the pass-through uses these phases as they are. A try at a
configured model, with its hold of the model's worst case, is `model_attempt`'s; what a try
that ends is charged, `charging`'s.

Whether a call may be retried is the attempt's `model` (a configured model's deployments
take retries; a pass-through call, which may not be safe to repeat, goes once), never the
request's record: the record only observes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.decision import OutputCap, refusal_kind, settling_may_admit
from gateway.admission.plan import Plan
from gateway.admission.redis_side import EarlyStart, Ticket
from gateway.compat.patches import Adapted, adapt_response
from gateway.config import Price
from gateway.endpoints.charging import UNDECODABLE, settle_failure, settle_whole
from gateway.observability.record import Exchange
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller
from gateway.server.stream_response import StreamResponse, Unless, cancel_on_disconnect
from gateway.upstream.contract import StreamedBody, StreamsBodies, UpstreamResponse
from gateway.upstream.dispatch import (
    UNANSWERED,
    PreparedCall,
    Tries,
    deployment_of,
    judge,
    read_error,
)
from gateway.wire import errors, sse
from gateway.wire.errors import GatewayError
from gateway.wire.headers import client_response_headers, client_timeout_s, encoded
from gateway.wire.usage import StreamMeter, Usage, answer_usage, whole_answer

log = logging.getLogger("gateway")
RawHeaders = list[tuple[bytes, bytes]]
# What a stream that upstream ended with an error event of its own is counted as.
STREAM_FAILED = "upstream_stream_error"
# The bytes of a stream's end kept to find its last event in (chat's `data: [DONE]`).
TAIL = 16
# Upstream's refusals for the account: of its credentials (a key revoked, a project without
# access), and of its rate limits or quota, which every team shares.
ACCOUNT_REFUSED = frozenset({401, 403, 429})
# A whole upstream answer: status, raw headers, body.
Whole = tuple[int, RawHeaders, bytes]


class Attempt:
    __slots__ = (
        "answered", "caller", "deployment", "exchange", "gw", "leaving", "left", "lost", "model",
        "own_key", "path", "request", "ticket", "tries", "unrelayed", "upstream_headers",
    )  # fmt: skip
    # The API answers with a JSON object (chat, Responses): a 200 that is none is a failure.
    ANSWERS_JSON = False

    def __init__(
        self,
        gw: Gateway,
        request: Request,
        exchange: Exchange,
        caller: Caller,
        path: str,
        model: str | None,
    ) -> None:
        self.gw = gw
        self.request = request
        self.exchange = exchange
        self.caller = caller
        self.path = path  # upstream, relative to its base URL (`/chat/completions`)
        # The configured model whose deployments serve the call (with retries), or None: once,
        # to the default upstream.
        self.model = model
        self.ticket: Ticket | None = None
        self.upstream_headers: dict[str, str] | None = None  # made once, when first needed
        # The whole 200 answer the client gets, parsed once and charged by `settle`: whoever
        # changes the answer changes this too.
        self.answered: dict[str, Any] | None = None
        self.left = False  # the client left a stream being relayed
        # Whether a call the client leaves before its answer began stops (`cancel_on_disconnect`'s
        # `unless`): the response cache's, when identical requests may wait for its answer.
        # None: it stops.
        self.leaving: Unless | None = None
        # A stream's answer and meter, from when its response is made until its relay begins.
        self.unrelayed: tuple[UpstreamResponse, StreamMeter | None] | None = None
        # What the upstream call's latest try may have left upstream to bill (`send`).
        self.tries = Tries()
        # A stream's try given up on after its request was written, no answer come (`send`).
        self.lost = False
        # The deployment whose answer this is ("": the upstream every model shares).
        self.deployment = ""
        # The call goes upstream on the team's own key (`upstream_key_env`), whose refusals
        # are the team's to fix.
        self.own_key = bool(caller.team.upstream_key_env)

    # -- admit ---------------------------------------------------------------------------------

    async def admit(
        self, plan: Plan, price: Price | None, prompt: int, early: EarlyStart | None = None
    ) -> None:
        """Hold the plan's worst case against the team's limits and budget, or raise the 429."""
        gw, trace = self.gw, self.exchange.trace
        gw.idle_soon()  # runs after the admit is written, during the round trip
        admission = gw.admission
        span = trace.reserving() if trace is not None else None
        try:
            decision = await admission.admit(plan, early)
            if settling_may_admit(decision):
                # The team's own answered calls may still be held: their settles wait in this
                # process's bookkeeping or on their way to Redis. Once they land, ask again (a
                # refused admission wrote nothing), so that a caller's previous answer never
                # refuses its next request. Off the hot path: only refusals get here.
                gw.run_later()
                if await admission.settles_landed(plan.team):
                    decision = await admission.admit(plan)
        except GatewayError as exc:
            if trace is not None:
                trace.reserved(span, exc.code or exc.type)
            raise
        if trace is not None:
            # A refusal is an answer, not a failure: the request's span carries its 429.
            refused_by = "" if decision.admitted else refusal_kind(decision.refused_by)
            trace.reserved(
                span, "", decision.admitted, plan.reserve, plan.est_tokens, decision.degraded,
                refused_by,
            )  # fmt: skip
        cap = None if decision.admitted else self.output_cap(prompt)
        self.ticket = self.exchange.ticket = admission.ticket(plan, decision, price, prompt, cap)
        if trace is not None:
            self.ticket.observer = trace

    def upstream_method(self) -> str:
        """The method upstream is asked. A HEAD reaches only routes of GET (Starlette serves
        it on each): upstream is asked that GET, the method the route (or the operator's
        pass-through entry) allows, and the server sends its answer back without the body."""
        method: str = self.request.scope["method"]
        return "GET" if method == "HEAD" else method

    def upstream_query(self) -> bytes:
        """The query string upstream is sent: the client's where the endpoint reads one (a
        list's cursor, a retrieve's `include[]`), none on a POST. OpenAI reads a POST's
        parameters from its body alone, where the gateway checks, prices and patches them:
        a query there is governed by nothing (an Azure client's `api-version`, harmless, is
        left behind rather than refused)."""
        scope = self.request.scope
        return b"" if scope["method"] == "POST" else bytes(scope["query_string"])

    def output_cap(self, prompt: int) -> OutputCap | None:
        """What caps the answer's length, for a refusal to say which cap would fit (None: the
        request has no such field)."""
        return None

    def failed(self, exc: GatewayError) -> None:
        """The try ends in `exc`: settle its hold, and say what its limits were. A stream
        stopped before its answer began (499: its caller left; or given up on, `lost`) is
        charged the prompt upstream read, and what it may generate before it notices
        (`left_usage`), within the hold. Anything else: `settle_failure`."""
        ticket = self.ticket
        if ticket is None:
            return
        if self.lost and not exc.billed:
            ticket.settle_within_hold(self.left_usage(Usage(ticket.prompt_estimate)))
        elif exc.status == 499:
            if self.tries.open:
                ticket.settle_within_hold(self.left_usage(Usage(ticket.prompt_estimate)))
            else:
                # It left between tries (a retry's back-off): the last one ended in an error
                # answer, which upstream does not bill.
                ticket.release()
        else:
            settle_failure(ticket, exc)
        exc.headers.update(ticket.headers)

    def left_usage(self, seen: Usage) -> Usage:
        """What a stream the caller left used, the gateway having stopped it when it saw `seen`:
        upstream goes on until it notices, `admission.left_stream_margin_tokens` at most."""
        margin = self.gw.config.admission.left_stream_margin_tokens
        # More than upstream reported, if it did: its usage object no longer says it.
        return replace(seen, completion_tokens=seen.completion_tokens + margin, reported=None)

    def reasons(self) -> bool:
        """Whether the model thinks before it answers, in reasoning tokens it bills that only
        the usage at a stream's end counts."""
        return False

    def read_to_end(self) -> bool:
        """Whether a stream is billed whole whoever leaves it, so read to its end as a whole
        answer is, and charged its hold when it ends without its usage: a reasoning model's
        (`reasons`)."""
        return self.reasons()

    # -- call ----------------------------------------------------------------------------------

    def headers_for_upstream(self) -> dict[str, str]:
        headers = self.upstream_headers
        if headers is None:
            headers = self.upstream_headers = self.gw.upstream_headers(
                self.request.scope["headers"], self.caller.team
            )
        return headers

    def client_headers(self, upstream: RawHeaders) -> list[tuple[bytes, bytes]]:
        """What of the upstream answer's headers its client gets."""
        return client_response_headers(upstream, self.gw.config.upstream.relay_ratelimit_headers)

    def traced_headers(self) -> dict[str, str]:
        """`headers_for_upstream`, with the upstream call's span begun (when tracing) and its
        `traceparent` among them."""
        headers = self.headers_for_upstream()
        trace = self.exchange.trace
        if trace is not None:
            trace.upstream(headers, self.upstream_method(), self.path, self.upstream_model())
        return headers

    def upstream_model(self) -> str:
        """The model name upstream is asked for, "" when the gateway does not know it."""
        return ""

    async def send(
        self, body: bytes | StreamedBody, *, buffer: bool, prepared: PreparedCall | None = None
    ) -> UpstreamResponse:
        """One upstream call: through the model's deployments with retries (the first try
        `prepared`, when given), or once to the default upstream when there is no model (the
        only call whose body may be sent as it arrives, `StreamedBody`: it cannot be retried).

        `buffer`: the answer is billed whole (not a stream), as is a stream read to its end
        (`read_to_end`: a reasoning model's, whose thinking upstream bills whoever reads it).
        Such a call that fails after its request was written is `billed`: upstream may finish
        the answer and bill it, so it is neither retried nor sent to a fallback, and is charged
        its hold. A stream's try given up on after its write, no answer come, is not retried
        either (`lost`, charged by `failed`), nor is one a front end answered with its own
        timeout page (`read_error`): the API may have answered it. A redirect is no answer: a
        front end's that passed the call on to no one (`upstream_redirect`)."""
        gw, scope = self.gw, self.request.scope
        headers = self.traced_headers()
        billed_whole = buffer or self.read_to_end()
        tries = self.tries
        try:
            if self.model is None:
                tries.open = True
                method, query = self.upstream_method(), self.upstream_query()
                if isinstance(body, StreamedBody):
                    upstream = gw.upstream
                    assert isinstance(upstream, StreamsBodies)  # its caller asked
                    resp = await upstream.send_streamed(method, self.path, query, headers, body)
                else:
                    resp = await gw.upstream.send(method, self.path, query, headers, body)
                if resp.status >= 500:
                    resp = await read_error(resp)  # a front end's timeout page fails as one lost
            else:
                assert isinstance(body, bytes)  # a model's calls may be retried: read whole
                timeout = client_timeout_s(scope["headers"])
                resp = await gw.dispatch.send(
                    self.model, self.upstream_method(), self.path, self.upstream_query(), headers,
                    body,
                    deadline=None if timeout is None else self.exchange.started + timeout,
                    buffer=buffer, prepared=prepared, api_key=gw.own_key(self.caller.team),
                    billed_whole=billed_whole, team=self.caller.team.name, tries_made=tries,
                )  # fmt: skip
        except GatewayError as exc:
            if billed_whole and exc.sent:
                exc.billed = True
            elif exc.sent and exc.code in UNANSWERED:
                self.lost = True  # raised, not retried: upstream may have begun (`failed`)
            raise
        self.deployment = deployment_of(resp)
        if 300 <= resp.status < 400:
            await resp.close()
            raise errors.upstream_redirect(resp.status)
        if resp.status >= 500 or resp.status in ACCOUNT_REFUSED:
            # Upstream's own failure, passed on after any retries; or its refusal for the
            # account, whose words its client is not told (`errors.upstream_message`): counted
            # here, its words logged as they are told otherwise (`heard`).
            gw.metrics.upstream_errors.labels(f"upstream_{resp.status}").inc()
        return resp

    def heard(self, status: int, error: Mapping[str, Any]) -> None:
        """Upstream's error, whose words the team was told otherwise (`errors.Heard`): the
        operator's log keeps them, with whose call it was and where it went."""
        log.warning(
            "upstream %s answered team %s with %s %s: %r",
            self.deployment or "default", self.caller.team.name, status or "an error",
            error.get("code") or error.get("type"), errors.logged_message(error),
        )  # fmt: skip

    def told(self, error: dict[str, Any]) -> dict[str, Any]:
        """Upstream's error object, come without a status (a stored object's), as this call's
        team is told it (`errors.Tell`)."""
        return errors.told_error(error, self.heard, own_key=self.own_key)

    def relayed(self, content: bytes, status: int, headers: RawHeaders) -> Response:
        """A whole answer whose headers are raw already: no decode and re-encode per header.
        An error is told as `errors.upstream_error_body` tells it (one without OpenAI's error
        object, a proxy's HTML page, in OpenAI's shape)."""
        if status >= 400:
            told = self.told_body(status, content)
            if told is not content:
                content = told
                headers = [(k, v) for k, v in headers if k != b"content-type"]
                headers.append((b"content-type", b"application/json"))
        response = Response(content, status_code=status)
        response.raw_headers += headers
        return response

    def told_body(self, status: int, content: bytes) -> bytes:
        """Upstream's error answer as this call's client is told it."""
        return errors.upstream_error_body(status, content, self.heard, own_key=self.own_key)

    async def fetch(self, body: bytes, prepared: PreparedCall | None = None) -> Whole:
        """A call whose answer is read whole before anything reaches the client."""
        trace = self.exchange.trace
        try:
            resp = await self.send(body, buffer=True, prepared=prepared)
        except GatewayError as exc:
            self.gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            if trace is not None:
                trace.upstream_done(0, exc.code or exc.type)
            raise
        try:
            content = await resp.read()
        except GatewayError as exc:
            self.gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            raise
        else:
            if trace is not None:
                trace.answered(content)
            self.checked(resp, content)
        finally:
            await resp.close()
            if trace is not None:
                trace.upstream_done(resp.status)
        return resp.status, resp.headers, content

    def checked(self, resp: UpstreamResponse, content: bytes) -> None:
        """`read_answer`, before `resp` is closed: an answer that fails it (an error object in a
        200) failed its deployment too, as its breaker is told."""
        try:
            self.read_answer(resp.status, content)
        except GatewayError:
            judge(resp, False)
            raise

    def read_answer(self, status: int, content: bytes) -> None:
        """Parse a whole 200 answer of an API that answers JSON, once (`answered`); one that
        is no JSON object, or is an error object, fails as the upstream's fault."""
        if status != 200 or not self.ANSWERS_JSON:
            return
        answer = whole_answer(content)
        exc: GatewayError | None
        if answer is None:
            exc = errors.upstream_invalid_answer(f"{len(content)} bytes that are no JSON object")
        else:
            exc = error_answer(answer, own_key=self.own_key)
            if exc is None:
                self.answered = answer
                return
        self.gw.metrics.upstream_errors.labels(exc.code or "").inc()
        raise exc

    # -- call, relay and settle ----------------------------------------------------------------

    async def forward(
        self,
        body: bytes | StreamedBody,
        stream: bool | None,
        *,
        strip_usage: bool = False,
        adapted: Adapted | None = None,
        prepared: PreparedCall | None = None,
    ) -> Response:
        """Call upstream and relay its answer as it comes; `stream=None` means: decide from the
        response. `adapted` is what patching promised to undo on the way back."""
        gw, exchange, ticket = self.gw, self.exchange, self.ticket
        loop, trace = gw.loop, exchange.trace
        if ticket is not None and loop is not None:
            loop.call_soon(ticket.prepare_headers)  # runs once the request is written
        began = time.perf_counter()
        # A whole answer is billed whole, so it is read to its end, whoever leaves, as is a
        # stream of a model that reasons; any other stream is billed for what was generated,
        # so a client that leaves stops it, unless identical requests wait for it (`leaving`).
        watch = stream is not False and not self.read_to_end()
        async with cancel_on_disconnect(
            self.request.receive, loop, watch=watch, unless=self.leaving
        ):
            try:
                resp = await self.send(body, buffer=stream is False, prepared=prepared)
            except GatewayError as exc:
                gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
                if trace is not None:
                    trace.upstream_done(0, exc.code or exc.type)
                raise
            exchange.upstream_s = upstream_s = time.perf_counter() - began
            out_headers = self.client_headers(resp.headers)
            out_headers.append((b"x-gateway-upstream-ms", b"%.1f" % (upstream_s * 1000)))
            if ticket is not None:
                out_headers += encoded(ticket.headers)
            if adapted is not None:
                out_headers.append((b"x-gateway-patched", ",".join(adapted.patches).encode()))
            content_type = next((v for k, v in resp.headers if k == b"content-type"), b"")
            if stream is None:
                streaming = content_type.startswith(b"text/event-stream")
            else:
                # A stream asked for and a JSON object answered (an error object a proxy sent
                # with a 200): read whole and told as such, never relayed as an event stream.
                streaming = stream and not content_type.startswith(b"application/json")
            if streaming and resp.status == 200:
                # From here the stream response watches for the client leaving.
                exchange.stream = True
                meter = self.stream_meter(strip_usage)
                events = meter is not None or content_type.startswith(b"text/event-stream")
                self.unrelayed = resp, meter
                response = StreamResponse(
                    self.relay(resp, meter, events), status_code=resp.status, loop=loop,
                    on_gone=self.leave, on_close=self.end_unrelayed,
                )  # fmt: skip
                response.raw_headers += out_headers
                return response
            try:
                content = await resp.read()
            except GatewayError as exc:
                judge(resp, False)
                gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
                if trace is not None:
                    trace.upstream_done(resp.status, exc.code or exc.type)
                if resp.status < 300:
                    # Upstream made the answer and bills it, whatever lost it after its
                    # headers (a stall past the read timeout, too): charged as billed.
                    exc.billed = True
                raise
            except BaseException:  # cancelled (its client left): no sign of upstream's health
                judge(resp, None)
                raise
            else:
                exchange.upstream_s = time.perf_counter() - began
                if trace is not None:
                    trace.upstream_done(resp.status)
                    trace.answered(content)
                self.checked(resp, content)
            finally:
                await resp.close()
        if adapted is not None and adapted.stop and self.answered is not None:
            self.answered = adapt_response(self.answered, adapted)
            content = orjson.dumps(self.answered)
        if ticket is not None:
            gw.after_response(self.settle, resp.status, content)
        return self.relayed(content, resp.status, out_headers)

    def stream_meter(self, strip_usage: bool) -> StreamMeter | None:
        """What watches a relayed stream: needed to charge it (so only when admitted, and not
        settled already: a call only counted, whose body may be a file's, no event stream)."""
        ticket = self.ticket
        return StreamMeter(strip_usage) if ticket is not None and not ticket.done else None

    async def relay(
        self, resp: UpstreamResponse, meter: StreamMeter | None = None, events: bool = True
    ) -> AsyncIterator[bytes]:
        """Pass a stream through chunk by chunk; whatever ends it, what was generated is charged
        (`settle_stream`). A body of other bytes than events (`events` False: a file's) that
        breaks is cut off, its connection dropped: an error event appended would be read as
        the file's last bytes.

        The client leaving (`leave`) is acted on at the next chunk from upstream. A chunk of one
        event: the gateway was keeping pace with upstream, and closes it; upstream stops once it
        notices. Several events at once: upstream had run ahead of the client, by as much as
        the buffers between them hold, and only the stream's end says how much it generated:
        the rest is read (and sent nowhere). So is a stream billed whole (`read_to_end`): a
        reasoning model's, whose reasoning only its usage counts; and one whose answer ended
        at that chunk (`answer_ended`): its usage is all that follows. A chunk that generated
        nothing (`winds_down`: it closed what was generated) is read past, and the next one
        judged again: upstream ends the answer there, or generates more, and is then closed."""
        self.unrelayed = None  # this relay ends the call, however it ends
        gw, exchange = self.gw, self.exchange
        trace = exchange.trace
        observe = trace.streaming() if trace is not None else None
        gw.metrics.open_streams.inc()
        stopped = reading_on = broken = bug = False
        tail = b""  # the stream's last bytes: where its last event is
        try:
            async for chunk in resp.iter_chunks():
                tail = chunk if len(chunk) >= TAIL else tail[-TAIL:] + chunk
                # An error event is told as `errors.told_events` tells it: every one of a
                # metered stream (its events come whole), one of another event stream that
                # a chunk holds whole.
                out = meter.feed(chunk) if meter is not None else chunk
                if events:
                    out = errors.told_events(out, self.heard, own_key=self.own_key)
                if meter is not None and meter.usage is not None:
                    # The usage event ends the answer: charged before the client reads its end,
                    # so that the caller's next request finds it settled.
                    self.settle_stream(meter)
                if self.left and not reading_on:
                    reading_on = meter is not None and (
                        meter.usage is not None
                        or self.read_to_end()
                        or chunk.count(b"\n\n") > 1
                        or self.answer_ended(chunk)
                    )
                    # A chunk that generated nothing: the next one is judged again.
                    stopped = not reading_on and (
                        meter is None or not self.winds_down(meter, chunk)
                    )
                    if stopped:
                        break
                if out:
                    if exchange.first_token_at is None:
                        exchange.first_token_at = time.perf_counter()
                    if observe is not None:
                        observe = observe(out) or observe
                    yield out
            if not stopped and meter is not None and (rest := meter.flush()):
                if observe is not None:
                    observe(rest)
                yield rest
            if not stopped and meter is not None and self.ended_early(meter, tail):
                raise errors.upstream_truncated("the stream ended before its last event")
        except GatewayError as exc:
            # Headers are gone already: report the failure in-stream, as OpenAI does, then stop.
            gw.metrics.upstream_errors.labels(exc.code or "unknown").inc()
            exchange.error_code = exc.code or exc.type
            broken = True
            judge(resp, False)  # cut off, stalled or undecodable: its deployment failed it
            if not events:
                raise
            if exc.code == UNDECODABLE and self.ticket is not None:
                # What upstream sent cannot be read, so neither can how much it generated.
                self.ticket.settle_at_reserve()
            yield self.stream_error(exc, meter)
        except (asyncio.CancelledError, GeneratorExit):
            stopped = True  # the gateway shuts down, or whoever reads the stream stopped
            raise
        except Exception:
            # The gateway's own bug (a meter's, say): it tells nothing of upstream's health, and
            # the gateway stopped reading where it broke. An event stream ends on an error
            # event (a client would take a silent cut for a network fault); other bytes are cut
            # off, as a broken file is, and the app's handler logs it.
            bug = True
            exchange.error_code = "internal_error"
            if not events:
                raise
            log.exception("a relayed stream broke on %s", self.path)
            yield self.stream_error(errors.internal_error(), meter)
        finally:
            gw.metrics.open_streams.dec()
            if bug or (stopped and not broken):
                judge(resp, None)  # its reader left: it tells nothing of upstream's health
            elif meter is not None and meter.failed:
                judge(resp, False)  # upstream's own error event ended it
            await resp.close()  # tells its breaker: a success unless judged otherwise
            if meter is not None and meter.failed and not exchange.error_code:
                # Upstream ended the stream with its own error event, relayed as it came.
                exchange.error_code = STREAM_FAILED
                gw.metrics.upstream_errors.labels(STREAM_FAILED).inc()
            if trace is not None:
                trace.upstream_done(resp.status, exchange.error_code)
            if meter is not None:
                # A stream broken mid-way (a stall, a reset, a bug) is one the gateway stopped
                # too: upstream may have generated more than arrived, and goes on until it
                # notices; unless its last chunk ended the answer (only its usage was to come).
                cut = (stopped or broken or bug) and not self.answer_ended(tail)
                try:
                    self.settle_stream(meter, stopped=cut)
                except Exception:
                    # A bug in the charge itself: the hold, never less than upstream bills,
                    # rather than the hold left until it expires.
                    if self.ticket is not None and not self.ticket.done:
                        self.ticket.settle_at_reserve()
                    raise
        if stopped:
            raise errors.client_closed()

    async def end_unrelayed(self) -> None:
        """The stream response is done with, and its relay never began (its task cancelled, at
        shutdown say, or its headers' write failed): its upstream call ends as one whose
        client left before the answer's first chunk. Its deployment is told nothing (a
        half-open breaker's probe is freed for the next call), its connection is closed (which
        stops upstream), and it is charged what it may have cost (`settle_stream`)."""
        unrelayed, self.unrelayed = self.unrelayed, None
        if unrelayed is None:
            return  # the relay began, and ended it
        resp, meter = unrelayed
        judge(resp, None)
        await resp.close()
        trace = self.exchange.trace
        if trace is not None:
            trace.upstream_done(resp.status, self.exchange.error_code)
        if meter is not None:
            self.settle_stream(meter, stopped=True)

    def ended_early(self, meter: StreamMeter, tail: bytes) -> bool:
        """Whether a stream upstream ended (`tail`: its last bytes) was cut short: without
        its usage, its own error or its API's last event. Its API's attempt knows that event:
        any other stream is taken as whole."""
        return False

    def answer_ended(self, chunk: bytes) -> bool:
        """Whether `chunk` of a stream says upstream generated all it will: only its usage
        follows. One whose client left is then read on to it (the bill, exactly) rather than
        closed, and one cut there is charged the text it carried: neither a margin for what
        upstream might still generate."""
        return False

    def winds_down(self, meter: StreamMeter, chunk: bytes) -> bool:
        """Whether `chunk`, the last `meter` saw, generated nothing (it closed a part, an item or
        a choice), so a stream whose client left may be read past it at no cost: its API's
        attempt knows such events."""
        return False

    def leave(self) -> None:
        """The client left the stream (the stream response says so): see `relay`."""
        self.left = True

    def stream_error(self, exc: GatewayError, meter: StreamMeter | None) -> bytes:
        """The event that ends a relayed stream `exc` broke (chat's shape)."""
        return sse.encode(exc.payload())

    # -- settle --------------------------------------------------------------------------------

    def settle_stream(self, meter: StreamMeter, *, stopped: bool = False) -> None:
        """Charge a relayed stream, however it ended, what its meter saw generated (once:
        later calls do nothing): the usage it reported, or the text it carried. One `stopped`
        before its usage (its client left, or upstream's stream broke: a stall, a reset) is
        charged `left_usage`, never more than its hold. A model's that reasons and reported no
        usage, however it ended (upstream's own error event ends it without any), its hold:
        upstream bills reasoning that only the usage counts; so is any stream billed whole
        (`read_to_end`)."""
        ticket = self.ticket
        if ticket is None or ticket.done:
            return
        self.served_at(meter.service_tier)
        if meter.usage is None and self.read_to_end():
            ticket.settle_at_reserve()
            return
        usage = meter.generated_usage(ticket.prompt_estimate)
        found = self.gw.model_of(meter.model) if ticket.price is None else None
        stopped = stopped and meter.usage is None
        if stopped:
            usage = self.left_usage(usage)
        if found is not None:  # pass-through: priced by the model that answered
            ticket.settle(usage, found[1].price, found[0])
        elif stopped:
            ticket.settle_within_hold(usage, self.stream_fees(meter))
        else:
            ticket.settle(usage, fees=self.stream_fees(meter))

    def settle(self, status: int, content: bytes) -> None:
        """Charge a finished, whole answer the usage it reports (`settle_whole`; nothing for
        an error)."""
        ticket = self.ticket
        assert ticket is not None
        if status >= 400:
            ticket.release()
            return
        answer = self.answered if self.answered is not None else whole_answer(content)
        usage, model = answer_usage(answer)
        trace = self.exchange.trace
        if trace is not None and answer is not None:
            trace.read(answer)
        found = self.gw.model_of(model) if ticket.price is None and model else None
        if found is not None:  # pass-through: priced by the model that answered
            ticket.settle(usage, found[1].price, found[0])
        else:
            settle_whole(ticket, usage, self.answer_fees(answer))

    def served_at(self, tier: Any) -> None:
        """The answer names the `service_tier` that served it (None: it does not say): a
        configured model's call is charged that tier's price (`ModelAttempt`)."""

    async def made_answer(self, answer: dict[str, Any], superseded: Any = None) -> None:
        """The gateway made `answer` of upstream's (by emulation; `superseded`: the id of an
        earlier answer that broke the format, which the client never got): what a kind of call
        keeps of it (nothing, unless it says otherwise)."""

    def answer_fees(self, answer: dict[str, Any] | None) -> int:
        """What upstream bills for a whole answer beside its tokens (hosted tools' calls)."""
        return 0

    def stream_fees(self, meter: StreamMeter) -> int:
        """What upstream bills for a stream beside its tokens (hosted tools' calls)."""
        return 0


def error_answer(answer: dict[str, Any], *, own_key: bool = False) -> GatewayError | None:
    """The failure a 200 is when its body is OpenAI's error object where an API object belongs
    (a proxy's): relayed, no SDK would raise on it. None for any other answer (a failed
    response object carries an `error` too, beside its `object`). `own_key`: the call went on
    its team's own upstream key (`Attempt.own_key`)."""
    error = answer.get("error")
    if not isinstance(error, dict) or "object" in answer:
        return None
    # Its status is no error's: read from its code.
    told = errors.upstream_message(0, error, own_key=own_key)
    return errors.upstream_invalid_answer(f"an error object in a 200: {told!r}")


def rebodied(response: Response, body: bytes, media_type: str) -> Response:
    """The same answer's status and headers around another body (translated, or shown as
    its client was answered)."""
    out = Response(body, status_code=response.status_code, media_type=media_type)
    out.raw_headers += [
        (k, v) for k, v in response.raw_headers if k not in (b"content-length", b"content-type")
    ]
    return out
