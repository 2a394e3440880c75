"""The dispatcher with a prepared first try (the request made ready before admission answered),
on a recording upstream: counted once, retried the usual way, released when cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


class _Ready:
    """A prepared request that answers with a canned status once fired."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.fired = self.cancelled = self.taken = False

    def fire(self) -> None:
        self.fired = True

    async def result(self) -> Any:
        self.fire()
        self.taken = True
        return _Answer(self.status)

    def cancel(self) -> bool:
        if self.taken:
            return False
        self.cancelled = self.taken = True
        return True


# OpenAI's own error object, as its error answers carry it.
ERROR_OBJECT = b'{"error": {"message": "overloaded", "type": "server_error", "code": null}}'
# A front end's own error page (a CDN's), in place of OpenAI's error object.
EDGE_PAGE = b"<html><head><title>504 Gateway Time-out</title></head></html>"


class _Answer:
    """An answer of `status`: its `body`, else OpenAI's error object (an error) or `{}`."""

    def __init__(self, status: int, body: bytes | None = None) -> None:
        self.status, self.headers = status, []
        self.body = body if body is not None else ERROR_OBJECT if status >= 400 else b"{}"

    def iter_chunks(self) -> Any:
        raise NotImplementedError

    async def read(self) -> bytes:
        return self.body

    async def close(self) -> None:
        pass


class _Preparing:
    """An upstream whose requests are made ready (`prepare`) or sent (`send`), recorded."""

    def __init__(self, status: int = 200, idle: bool = True) -> None:
        self.status, self.idle = status, idle
        self.prepared: list[_Ready] = []
        self.sent: list[dict[str, str]] = []

    def prepare(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Any:
        if not self.idle:
            return None
        self.prepared.append(_Ready(self.status))
        self.prepared[-1].headers = headers  # type: ignore[attr-defined]
        return self.prepared[-1]

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Any:
        self.sent.append(headers)
        return _Answer(self.status)

    def ready(self) -> bool:
        return True

    async def close(self) -> None:
        pass


def dispatcher_on(upstream: _Preparing) -> tuple[Any, Any]:
    from gateway.observability.metrics import Metrics
    from gateway.upstream.dispatch import Dispatcher, Target
    from gateway.upstream.resilience import Breaker, RetryPolicy

    target = Target("only", upstream, "sk-deployment", Breaker())  # type: ignore[arg-type]

    async def no_sleep(_: float) -> None:
        pass

    policy = RetryPolicy(attempts=2, backoff_s=0.0)
    return Dispatcher({"m": [target]}, policy, Metrics(), sleep=no_sleep), target


@pytest.mark.anyio
async def test_a_prepared_first_try_is_counted_once_and_taken_by_send() -> None:
    upstream = _Preparing()
    dispatch, target = dispatcher_on(upstream)
    prepared = dispatch.prepare("m", "POST", "/chat/completions", b"", {"x": "1"}, b"{}")
    assert prepared is not None and target.in_flight == 1
    assert upstream.prepared[0].headers == {"x": "1", "authorization": "Bearer sk-deployment"}  # type: ignore[attr-defined]
    resp = await dispatch.send("m", "POST", "/chat/completions", b"", {}, b"{}", prepared=prepared)
    assert resp.status == 200 and upstream.prepared[0].fired and upstream.sent == []
    assert target.in_flight == 1  # until the answer is closed
    await resp.close()
    assert target.in_flight == 0
    prepared.cancel()  # taken: changes nothing
    assert target.in_flight == 0 and not upstream.prepared[0].cancelled


@pytest.mark.anyio
async def test_a_prepared_try_that_fails_is_retried_the_usual_way() -> None:
    upstream = _Preparing(status=503)
    dispatch, target = dispatcher_on(upstream)
    prepared = dispatch.prepare("m", "POST", "/chat/completions", b"", {}, b"{}")
    resp = await dispatch.send("m", "POST", "/chat/completions", b"", {}, b"{}", prepared=prepared)
    assert resp.status == 503 and len(upstream.sent) == 1  # the second try was sent
    await resp.close()
    assert target.in_flight == 0


@pytest.mark.anyio
async def test_a_cancelled_prepared_try_is_no_longer_in_flight() -> None:
    upstream = _Preparing()
    dispatch, target = dispatcher_on(upstream)
    prepared = dispatch.prepare("m", "POST", "/chat/completions", b"", {}, b"{}")
    assert prepared is not None
    prepared.cancel()
    assert target.in_flight == 0 and upstream.prepared[0].cancelled
    assert dispatch.prepare("m", "POST", "/x", b"", {}, b"") is not None
    upstream.idle = False
    assert dispatch.prepare("m", "POST", "/x", b"", {}, b"") is None


class _Failing(_Preparing):
    """An upstream whose sends fail with the error `fail` makes, after recording them."""

    def __init__(self, fail: Any) -> None:
        super().__init__(idle=False)
        self.fail = fail

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Any:
        self.sent.append(headers)
        raise self.fail()


def _failures() -> dict[str, Any]:
    from gateway.wire import errors

    return {
        "timeout after the write": lambda: errors.upstream_timeout(1, sent=True),
        "reset after the write": lambda: errors.upstream_unreachable("closed", sent=True),
        "connect timeout": lambda: errors.upstream_timeout(1, sent=False),
        "refused": lambda: errors.upstream_unreachable("refused", sent=False),
    }


@pytest.mark.anyio
@pytest.mark.parametrize("buffer", [True, False], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", sorted(_failures()))
async def test_no_answer_is_asked_again_once_its_request_was_written(
    kind: str, buffer: bool
) -> None:
    """Upstream finishes and bills a whole answer whoever waits, and a stream until it notices
    its reader gone: a second try would be a second bill, past the call's hold. A request never
    written reached no one: it is retried (two tries here)."""
    from gateway.wire.errors import GatewayError

    upstream = _Failing(_failures()[kind])
    dispatch, target = dispatcher_on(upstream)
    with pytest.raises(GatewayError) as info:
        await dispatch.send("m", "POST", "/chat/completions", b"", {}, b"{}", buffer=buffer)
    written = info.value.sent
    assert len(upstream.sent) == (1 if written else 2)
    # Spent retries say so to the SDKs; a call never retried leaves them their own choice.
    assert ("x-should-retry" in info.value.headers) == (len(upstream.sent) == 2)
    assert target.in_flight == 0


class _SlowClose(_Answer):
    """An answer whose connection's release waits (httpx's `aclose` may)."""

    def __init__(self, status: int, closing: asyncio.Event) -> None:
        super().__init__(status)
        self.closing = closing

    async def close(self) -> None:
        self.closing.set()
        await asyncio.sleep(30)


class _SlowClosing(_Preparing):
    def __init__(self) -> None:
        super().__init__(idle=False)
        self.closing = asyncio.Event()

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Any:
        return _SlowClose(self.status, self.closing)


@pytest.mark.anyio
async def test_a_probe_cancelled_while_its_read_answer_is_released_frees_the_probe() -> None:
    from gateway.observability.metrics import Metrics
    from gateway.upstream.dispatch import Dispatcher, Target
    from gateway.upstream.resilience import Breaker, RetryPolicy

    upstream = _SlowClosing()
    breaker = Breaker(failures=1, cooldown_s=30)
    breaker.failure(0.0)  # open since time 0: at time 60 the next call is its probe
    target = Target("only", upstream, "sk-deployment", breaker)  # type: ignore[arg-type]
    dispatch = Dispatcher({"m": [target]}, RetryPolicy(), Metrics(), clock=lambda: 60.0)
    call = asyncio.ensure_future(
        dispatch.send("m", "POST", "/chat/completions", b"", {}, b"{}", buffer=True)
    )
    await upstream.closing.wait()
    assert not breaker.allows(60.0)  # the probe is out
    call.cancel()  # the gateway shuts down while its answer, read whole, is released
    with pytest.raises(asyncio.CancelledError):
        await call
    assert target.in_flight == 0
    assert breaker.allows(60.0)  # not stuck half-open: the next call probes


class _Scripted(_Preparing):
    """An upstream whose tries end as `outcomes` say, one each: a status answered, or an
    error raised (after the request was written, or before)."""

    def __init__(self, *outcomes: Any) -> None:
        super().__init__(idle=False)
        self.outcomes = list(outcomes)

    async def send(
        self, method: str, path: str, query: bytes, headers: dict[str, str], body: bytes
    ) -> Any:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if isinstance(outcome, tuple):  # (status, body)
            return _Answer(*outcome)
        return _Answer(outcome)


def _lost_after_write() -> Exception:
    from gateway.wire import errors

    return errors.upstream_timeout(1.0, sent=True)


def _never_sent() -> Exception:
    from gateway.wire import errors

    return errors.upstream_unreachable("refused", sent=False)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("outcomes", "buffer", "tries", "ends", "open_"),
    [
        # A stream's try given up on after its write is not retried: upstream may have begun
        # it, and its caller charges it within the hold (a retry would bill it again).
        ((_lost_after_write(), 200), False, 1, "upstream_timeout", True),
        ((503, _lost_after_write()), False, 2, "upstream_timeout", True),
        # Error answers are not billed; a try that reached no one neither: both retried.
        ((429, 503), False, 2, 503, False),
        ((_never_sent(), 200), False, 2, 200, True),
        # A whole answer given up on after its write is raised as it is, for its caller to
        # charge its hold.
        ((_lost_after_write(), 200), True, 1, "upstream_timeout", True),
    ],
    ids=["lost", "lost-after-error-answer", "error-answers", "never-sent", "whole-given-up"],
)
async def test_tries_say_what_upstream_may_bill(
    outcomes: tuple[Any, ...], buffer: bool, tries: int, ends: int | str, open_: bool
) -> None:
    from gateway.upstream.dispatch import Tries
    from gateway.wire.errors import GatewayError

    upstream = _Scripted(*outcomes)
    dispatch, _ = dispatcher_on(upstream)
    made = Tries()
    ended: int | str
    try:
        resp = await dispatch.send(
            "m", "POST", "/x", b"", {}, b"{}", buffer=buffer, tries_made=made
        )
        ended = resp.status
        await resp.close()
    except GatewayError as exc:
        ended = exc.code
        # Past the gateway's own retries, the client's would multiply them.
        assert (exc.headers.get("x-should-retry") == "false") == (tries > 1)
    assert (len(outcomes) - len(upstream.outcomes), ended, made.open) == (tries, ends, open_)


@pytest.mark.anyio
async def test_a_call_cancelled_during_a_retrys_back_off_has_no_try_open() -> None:
    """The first try was answered 429; its caller leaves while the retry waits."""
    from gateway.observability.metrics import Metrics
    from gateway.upstream.dispatch import Dispatcher, Target, Tries
    from gateway.upstream.resilience import Breaker, RetryPolicy

    target = Target("only", _Scripted(429, 200), "sk", Breaker())  # type: ignore[arg-type]
    waiting = asyncio.Event()

    async def back_off(_: float) -> None:
        waiting.set()
        await asyncio.Event().wait()  # until cancelled

    dispatch = Dispatcher({"m": [target]}, RetryPolicy(attempts=2), Metrics(), sleep=back_off)
    made = Tries()
    call = asyncio.create_task(dispatch.send("m", "POST", "/x", b"", {}, b"{}", tries_made=made))
    await waiting.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not made.open


@pytest.mark.anyio
@pytest.mark.parametrize("status", [504, 524])
@pytest.mark.parametrize("buffer", [True, False], ids=["whole", "stream"])
@pytest.mark.parametrize("after", [False, True], ids=["first try", "after a 503"])
async def test_a_front_ends_own_timeout_page_is_not_asked_again(
    status: int, buffer: bool, after: bool
) -> None:
    """A front end's timeout page without OpenAI's error object (a CDN's, once it stopped
    waiting for the API) may stand where an answer the API finished, and bills, should have
    come: raised as a try lost after its write (its caller charges it), never tried again, by
    the gateway or its client. OpenAI's own 5xx before it was retried."""
    from gateway.upstream.dispatch import Tries
    from gateway.wire.errors import GatewayError

    page = (status, EDGE_PAGE)
    upstream = _Scripted(*((503, page, 200) if after else (page, 200)))
    dispatch, target = dispatcher_on(upstream)
    made = Tries()
    with pytest.raises(GatewayError) as info:
        await dispatch.send("m", "POST", "/x", b"", {}, b"{}", buffer=buffer, tries_made=made)
    exc = info.value
    assert (exc.status, exc.code, exc.sent) == (status, "upstream_error", True)
    assert exc.headers["x-should-retry"] == "false"
    assert len(upstream.outcomes) == 1 and made.open  # the 200 never asked for
    assert target.in_flight == 0


@pytest.mark.anyio
@pytest.mark.parametrize("status", [502, 503])
async def test_a_front_ends_bad_gateway_page_is_retried(status: int) -> None:
    """A front end's 502 or 503 page says the API was not reached (or refused the call): asked
    again, as OpenAI's own 5xx is, and nothing left open to charge."""
    from gateway.upstream.dispatch import Tries

    upstream = _Scripted((status, EDGE_PAGE), 200)
    dispatch, target = dispatcher_on(upstream)
    made = Tries()
    resp = await dispatch.send("m", "POST", "/x", b"", {}, b"{}", buffer=True, tries_made=made)
    assert resp.status == 200 and not upstream.outcomes  # the 200 asked for
    await resp.close()
    assert target.in_flight == 0


@pytest.mark.anyio
@pytest.mark.parametrize("buffer", [True, False], ids=["whole", "stream"])
async def test_openais_own_5xx_left_after_the_retries_is_answered_read_whole(
    buffer: bool,
) -> None:
    from gateway.upstream.dispatch import Tries

    upstream = _Scripted(503, 502)
    dispatch, target = dispatcher_on(upstream)
    made = Tries()
    resp = await dispatch.send("m", "POST", "/x", b"", {}, b"{}", buffer=buffer, tries_made=made)
    assert (resp.status, await resp.read()) == (502, ERROR_OBJECT)
    assert (b"x-should-retry", b"false") in resp.headers
    assert not made.open and target.in_flight == 0
    await resp.close()
    assert target.in_flight == 0
