"""Sending a model's upstream calls: which deployment takes the call (fewest in flight, circuit
breaker closed), and retrying failed tries with backoff while nothing has reached the client.

The rules are `gateway.upstream.resilience` (pure); this is the I/O around them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.observability.metrics import Metrics
from gateway.upstream.contract import PreparedRequest, Preparing, Upstream, UpstreamResponse
from gateway.upstream.resilience import (
    FAILURE_STATUSES,
    HALF_OPEN,
    RETRY_STATUSES,
    Breaker,
    RetryPolicy,
    may_retry,
    pick,
    retry_after_s,
    retry_delay,
)
from gateway.wire import errors
from gateway.wire.errors import GatewayError

log = logging.getLogger("gateway.upstream.dispatch")
# A try's failures after its request was written that no answer of the API's began (a front
# end's own timeout page, `errors.edge_page`, stands where one may have): upstream may have read it
# and begun, and bills what it generates until it notices (an answer that came undecodable, or
# cut, is charged as such by its caller).
UNANSWERED = frozenset({"upstream_timeout", "upstream_unreachable", "upstream_error"})


@dataclass(slots=True)
class Target:
    """One deployment serving one model: its client, key and health as this replica sees it."""

    name: str
    upstream: Upstream
    api_key: str
    breaker: Breaker
    in_flight: int = 0
    # The client again, when it can make a call ready ahead: asked once, not per call.
    preparing: Preparing | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.preparing = self.upstream if isinstance(self.upstream, Preparing) else None


@dataclass(slots=True)
class _Counted:
    """An upstream response that keeps its deployment's in-flight count until it is closed.

    A successful answer's verdict for the breaker waits for its end too (`pending`): its
    headers say little, as a stream may be cut mid-way, stall, or end in an error event, and a
    200's body may be an error object. It is told when the answer is closed (`finish`): a
    success, unless its reader said otherwise first (`judge`)."""

    resp: UpstreamResponse
    target: Target
    clock: Callable[[], float] = time.perf_counter  # the dispatcher's, which its breakers run on
    probe: bool = False  # the breaker's half-open probe
    team: str = ""  # whose call it is (a breaker weighs one team's failures apart)
    pending: bool = False
    healthy: bool | None = True  # the verdict `finish` tells, while `pending`
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self.status = self.resp.status
        self.headers = self.resp.headers

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return self.resp.iter_chunks()

    async def read(self) -> bytes:
        return await self.resp.read()

    def finish(self) -> None:
        """The call is over: out of flight, and its pending verdict told."""
        if self.closed:
            return
        self.closed = True
        target = self.target
        target.in_flight -= 1
        if self.pending:
            healthy = self.healthy
            if healthy:
                target.breaker.success(self.probe)
            elif healthy is None:
                target.breaker.release(self.probe)
            else:
                target.breaker.failure(self.clock(), self.probe, self.team)

    async def close(self) -> None:
        self.finish()
        await self.resp.close()


@dataclass(slots=True)
class _Read:
    """An answer already read whole (and its connection released)."""

    resp: _Counted
    body: bytes
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = self.resp.status
        self.headers = self.resp.headers

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    async def read(self) -> bytes:
        return self.body

    async def close(self) -> None:
        self.resp.finish()  # its connection was released once read


@dataclass(slots=True)
class _ErrorRead:
    """An error answer read whole, its connection released (and out of flight)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    deployment: str = ""  # the name of the deployment that answered (`deployment_of`)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    async def read(self) -> bytes:
        return self.body

    async def close(self) -> None:
        pass


# A front end's statuses for "the API did not answer in time" (a load balancer's 504,
# Cloudflare's 524): it had the request and stopped waiting, so the API may have gone on to
# answer, and bill. Its other pages (a 502 or 503: the API unreachable, or refusing) say the
# request went nowhere, and are retried as OpenAI's own 5xx are.
EDGE_TIMEOUTS = frozenset({504, 524})


async def read_error(resp: UpstreamResponse) -> _ErrorRead:
    """An error answer (429, 5xx), read whole and closed. A front end's own timeout page (one of
    `EDGE_TIMEOUTS` without OpenAI's error object) fails as `errors.edge_page`: it may stand
    where an answer the API finished, and bills, should have come; OpenAI's own 5xx is an
    error it bills nothing for. A body cut off is no error object."""
    try:
        body = await resp.read()
    except GatewayError:
        body = b""
    finally:
        await resp.close()
    if resp.status in EDGE_TIMEOUTS and not errors.is_error_object(body):
        raise errors.edge_page(resp.status)
    return _ErrorRead(resp.status, resp.headers, body, deployment_of(resp))


def deployment_of(resp: UpstreamResponse) -> str:
    """The name of the deployment that answered `resp` (its label under the model's
    `deployments`, "default" for the upstream every model shares); "" for an answer not from a
    model's dispatch."""
    if isinstance(resp, _ErrorRead):
        return resp.deployment
    counted = resp.resp if isinstance(resp, _Read) else resp
    return counted.target.name if isinstance(counted, _Counted) else ""


def judge(resp: UpstreamResponse, healthy: bool | None) -> None:
    """What the answer `resp` turned out to say of its deployment's health, before it is closed:
    False, a failure after its headers (cut off, stalled, an error event or object in place of
    the answer); None, nothing (its reader left). Told its breaker when it is closed; an answer
    not from a deployment's dispatch has no breaker to tell."""
    counted = resp.resp if isinstance(resp, _Read) else resp
    if isinstance(counted, _Counted):
        counted.healthy = healthy


def billed_answer_lost(exc: GatewayError) -> GatewayError:
    """The failure of a successful answer lost after its headers: cut off (`upstream_truncated`,
    which the try's charge reads as billed), whatever cut it, unless it came whole but could
    not be decoded (`upstream_encoding`, billed too)."""
    if exc.code in ("upstream_truncated", "upstream_encoding"):
        return exc
    return errors.upstream_truncated(f"the answer was lost after its headers ({exc.code})")


def retries_spent(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An upstream answer's headers, marked as `errors.mark_retries_spent` marks an error."""
    marked = [(name, value) for name, value in headers if name != b"x-should-retry"]
    marked.append((b"x-should-retry", b"false"))
    return marked


@dataclass(slots=True)
class Tries:
    """What a call's latest try may have left upstream to bill, kept by `Dispatcher.send` as it
    goes for its caller to charge, however the call ends. `open`: it was written and has not
    ended in an error answer, which upstream does not bill (a caller that leaves during a
    retry's back-off leaves nothing billed; tries that upstream may bill are not retried)."""

    open: bool = False


@dataclass(slots=True)
class PreparedCall:
    """The first try of a `Dispatcher.send`, made ready on a deployment's idle connection.

    `fire()` writes it (from a callback, say, the moment admission answers); `send(prepared=)`
    takes it as its first try; `cancel()` undoes it if it is not wanted after all.
    """

    target: Target
    request: PreparedRequest
    probe: bool = False
    team: str = ""

    def fire(self) -> None:
        self.request.fire()

    def cancel(self) -> None:
        if self.request.cancel():
            self.target.in_flight -= 1
            self.target.breaker.release(self.probe)


class Dispatcher:
    def __init__(
        self,
        targets: dict[str, list[Target]],
        policy: RetryPolicy,
        metrics: Metrics,
        clock: Callable[[], float] = time.perf_counter,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._targets = targets
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._jitter = jitter
        self._sleep = sleep
        self._turn = 0

    def targets(self, model: str) -> Sequence[Target]:
        return self._targets[model]

    def _pick(self, targets: Sequence[Target], now: float) -> int | None:
        return pick(
            [t.in_flight for t in targets], [t.breaker.allows(now) for t in targets], self._turn
        )

    def available(self, model: str) -> bool:
        """Whether some deployment of `model` would take a call now (no open circuit)."""
        now = self._clock()
        return any(t.breaker.allows(now) for t in self._targets[model])

    def prepare(
        self,
        model: str,
        method: str,
        path: str,
        query: bytes,
        headers: dict[str, str],
        body: bytes,
        api_key: str | None = None,
        team: str = "",
    ) -> PreparedCall | None:
        """`send`'s first try, ready to be written by `fire()` and taken by `send(prepared=)`;
        None when the chosen deployment has no idle connection at hand (or none is open)."""
        targets = self._targets[model]
        now = self._clock()
        index = self._pick(targets, now)
        if index is None:
            return None
        target = targets[index]
        if target.preparing is None:
            return None
        sent = {**headers, "authorization": f"Bearer {api_key or target.api_key}"}
        request = target.preparing.prepare(method, path, query, sent, body)
        if request is None:
            return None
        self._turn += 1
        breaker = target.breaker
        breaker.begin(now, team)
        target.in_flight += 1
        return PreparedCall(target, request, breaker.state == HALF_OPEN, team)

    async def send(
        self,
        model: str,
        method: str,
        path: str,
        query: bytes,
        headers: dict[str, str],
        body: bytes,
        deadline: float | None = None,
        buffer: bool = False,
        prepared: PreparedCall | None = None,
        api_key: str | None = None,
        billed_whole: bool = False,
        team: str = "",
        tries_made: Tries | None = None,
    ) -> UpstreamResponse:
        """One upstream call for `model`, retried on 429 and 5xx and on failures before its
        request was written (a refused connection, a connect timeout) while tries and the
        caller's `deadline` (a `clock()` value) allow. An answer or error after retries says
        `x-should-retry: false`: the client's own retries would multiply the upstream calls
        (three SDK tries of three gateway tries each).

        With `buffer`, the call's answer is billed whole (not a stream) and is read whole
        before it is returned, so a connection lost after an error's headers (nothing has
        reached the client yet) is retried too. What upstream may be billing is not: a
        successful answer lost so fails `upstream_truncated` (`billed_answer_lost`), and a
        failure after the request was written (`sent`: a timeout, a reset before any answer)
        is raised as it is. A retry would be a second answer billed, the first charged to
        nobody. A stream stops upstream when its reader leaves, but one given up on after its
        write with no answer come (`UNANSWERED`) is raised too: upstream may have read its
        prompt and begun, which its caller charges within the call's hold, and a retry would
        bill that again past the hold (the client's own retry is admitted and held on its
        own). So is a front end's own timeout page (`read_error`: its 504 without OpenAI's
        error object may stand where an answer upstream bills should have come). A stream
        `billed_whole` too (a reasoning model's, whose thinking upstream bills whoever reads
        it) is raised as with `buffer` whatever failed after the write. An error answer
        returned is read whole.
        `prepared` (from `prepare`, for the same call) is the first try. `team`: whose call it
        is, for the breaker (`Breaker`: one team's failures alone do not shut a deployment).
        `tries_made` is told what the latest try may have left upstream to bill (`Tries`).
        """
        targets = self._targets[model]
        made = tries_made if tries_made is not None else Tries()
        tries = 0
        while True:
            ready: PreparedRequest | None = None
            if prepared is not None:  # counted in flight and begun when it was made ready
                target, ready, probe = prepared.target, prepared.request, prepared.probe
                prepared = None
            else:
                now = self._clock()
                index = self._pick(targets, now)
                self._turn += 1
                if index is None:
                    wait = min(t.breaker.reopens_in(now) for t in targets)
                    raise errors.circuit_open(model, wait)
                target = targets[index]
                breaker = target.breaker
                breaker.begin(now, team)
                probe = breaker.state == HALF_OPEN
                target.in_flight += 1
            tries += 1
            failure: GatewayError | None = None
            resp: UpstreamResponse | None = None
            made.open = True
            try:
                if ready is not None:
                    resp = await ready.result()
                else:
                    # A team's own key (its own project) before the deployment's.
                    sent = {**headers, "authorization": f"Bearer {api_key or target.api_key}"}
                    resp = await target.upstream.send(method, path, query, sent, body)
            except GatewayError as exc:
                target.in_flight -= 1
                whole = (buffer or billed_whole) and exc.sent
                lost = exc.sent and exc.code in UNANSWERED
                # Upstream may be generating an answer to it: its caller's to charge.
                made.open = whole or lost
                if exc.status < 500:  # the request's own fault: nothing reached the upstream
                    target.breaker.release(probe)
                    raise
                target.breaker.failure(self._clock(), probe, team)
                if exc.headers.get("x-should-retry") == "false":
                    raise  # no repeat can fix it
                if whole or lost:
                    if tries > 1:
                        errors.mark_retries_spent(exc.headers)
                    raise  # upstream may be generating the answer: a retry would bill twice
                failure = exc
            except BaseException:  # cancelled: the client left
                target.in_flight -= 1
                target.breaker.release(probe)
                raise
            if resp is not None:
                status = resp.status
                # A success is told when the answer ends (`_Counted`), whose body may fail.
                pending = status < 300
                made.open = pending  # an error answer is not billed
                if status in FAILURE_STATUSES:
                    target.breaker.failure(self._clock(), probe, team)
                elif status == 429:
                    target.breaker.release(probe)  # the caller's rate, not the upstream's health
                elif not pending:
                    target.breaker.success(probe)
                if status == 429 or status >= 500:
                    try:
                        resp = await read_error(_Counted(resp, target))
                    except GatewayError:
                        # A front end's page: the API may have answered it, and bills it. Not
                        # tried again, as a try lost after its write is not.
                        made.open = True
                        raise
                    if status not in RETRY_STATUSES:
                        return resp
                elif status not in RETRY_STATUSES:
                    counted = _Counted(resp, target, self._clock, probe, team, pending)
                    if not buffer:
                        return counted
                    try:
                        body = await counted.read()
                    except GatewayError as exc:
                        counted.pending, counted.healthy = True, False
                        await counted.close()
                        if pending:
                            # Upstream generated the answer, and bills it: a retry would be a
                            # second answer billed, the first charged to nobody.
                            raise billed_answer_lost(exc) from None
                        failure, resp = exc, None
                    except BaseException:  # cancelled (the gateway stops): nothing told
                        counted.healthy = None
                        await counted.close()
                        raise
                    else:
                        try:
                            await resp.close()  # a client's release may wait (httpx's)
                        except BaseException:  # cancelled: nothing told, as above
                            counted.healthy = None
                            counted.finish()
                            raise
                        return _Read(counted, body)  # told when its reader closes it
            asked = retry_after_s(resp.headers, time.time()) if resp is not None else None
            delay = retry_delay(self._policy, tries, asked, self._jitter())
            if not may_retry(self._policy, tries, delay, asked, self._clock(), deadline):
                if resp is not None:  # read whole and closed (`read_error`)
                    if tries > 1:
                        resp.headers = retries_spent(resp.headers)
                    return resp
                assert failure is not None
                if tries > 1:
                    errors.mark_retries_spent(failure.headers)
                raise failure
            log.info(
                "retrying %s in %.2f s after %s from %s",
                model, delay, resp.status if resp else failure.code, target.name,  # type: ignore[union-attr]
            )  # fmt: skip
            self._metrics.upstream_retries.labels(model).inc()
            await self._sleep(delay)
