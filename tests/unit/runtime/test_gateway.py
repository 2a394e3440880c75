"""The gateway's after-response bookkeeping queue (`Gateway.after_response`), and how it finds
a model by any of its names (`Gateway.model_of`)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.observability.record import Exchange
from gateway.runtime import gateway as state
from gateway.runtime.build import open_gateway
from gateway.runtime.gateway import Gateway
from tests.conftest import base_config


def running_gateway() -> Gateway:
    gw = open_gateway(base_config())
    gw.loop = asyncio.get_running_loop()
    return gw


def test_without_a_loop_the_work_runs_at_once() -> None:
    gw = open_gateway(base_config())
    done: list[str] = []
    gw.after_response(done.append, "now")
    assert done == ["now"]


@pytest.mark.anyio
async def test_work_waits_for_the_next_request_to_wait_and_keeps_its_order() -> None:
    gw = running_gateway()
    done: list[int] = []
    for n in range(3):
        gw.after_response(done.append, n)
    await asyncio.sleep(0)
    assert done == []  # not in the response's own tick: that would delay the next request
    gw.idle_soon()  # a request is now waiting for Redis
    await asyncio.sleep(0)
    assert done == [0, 1, 2]


@pytest.mark.anyio
async def test_without_another_request_a_timer_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "AFTER_RESPONSE_S", 0.01)
    gw = running_gateway()
    done: list[str] = []
    gw.after_response(done.append, "late")
    await asyncio.sleep(0.05)
    assert done == ["late"]


@pytest.mark.anyio
async def test_a_failure_does_not_cost_the_rest_their_turn() -> None:
    gw = running_gateway()
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    gw.after_response(broken)
    gw.after_response(done.append, "charged")
    gw.run_later()
    assert done == ["charged"]


@pytest.mark.anyio
async def test_closing_runs_what_is_left() -> None:
    gw = running_gateway()
    done: list[str] = []
    gw.after_response(done.append, "at shutdown")
    await gw.close()
    assert done == ["at shutdown"]


class Spans:
    """A request's trace as the gateway finishes it (`RequestTrace.finish`)."""

    def __init__(self, name: str, done: list[str]) -> None:
        self.name, self.done = name, done

    def finish(self, exchange: Exchange, end_ns: int) -> None:
        self.done.append(f"{self.name} spans at {end_ns}")


@pytest.mark.anyio
async def test_traced_requests_finish_after_the_rest_of_the_bookkeeping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each request's charge and log line first (its span reads what it was charged), then
    the spans of every request in a row; alone, a timer runs them; at shutdown, what is left."""
    monkeypatch.setattr(state, "AFTER_RESPONSE_S", 0.01)
    gw = running_gateway()
    done: list[str] = []
    for n in range(2):
        gw.after_response(done.append, f"{n} charged")
        gw.trace_ended(Spans(str(n), done), Exchange(started=0.0), n)  # type: ignore[arg-type]
    gw.idle_soon()
    await asyncio.sleep(0)
    assert done == ["0 charged", "1 charged", "0 spans at 0", "1 spans at 1"]
    gw.trace_ended(Spans("alone", done), Exchange(started=0.0), 2)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert done[-1] == "alone spans at 2"
    gw.trace_ended(Spans("last", done), Exchange(started=0.0), 3)  # type: ignore[arg-type]
    await gw.close()
    assert done[-1] == "last spans at 3"


def test_a_model_by_any_name_and_a_fine_tune_by_its_base() -> None:
    gw = open_gateway(base_config())
    assert gw.model_of("gpt-4o-2024-08-06") == gw.models["gpt-4o"]
    tune = "ft:gpt-4o-2024-08-06:org::abc:ckpt-step-10"
    found = gw.model_of(tune)
    assert found is not None and found[0] == "gpt-4o"
    assert found[1].upstream == tune and found[1].price.output == 15_000_000
    assert gw.model_of("ft:o1-mini-2024-09-12:org::abc") is None  # a base not fine-tuned
    assert gw.model_of("ft:gpt-9:org::abc") is None and gw.model_of("ft:") is None
    assert gw.model_of("no-such-model") is None


@pytest.mark.anyio
async def test_each_shutdown_is_exported_with_the_model_serving_it_from_that_day() -> None:
    # gpt-6-luna, gpt-4o's successor, is set to shut down first: from gpt-4o's day
    # (2027-01-14) gpt-6.1-sol serves it, as the shield and the alert's description say.
    gw = open_gateway(
        base_config(
            **{"O1GW__MODELS__GPT-6-LUNA__SHUTDOWN": "2027-01-01",
               "O1GW__MODELS__GPT-6-LUNA__SUCCESSOR": "gpt-6.1-sol"}
        )
    )  # fmt: skip
    sample = gw.metrics.registry.get_sample_value
    name = "gateway_model_shutdown_timestamp_seconds"
    assert sample(name, {"model": "gpt-4o", "successor": "gpt-6.1-sol"}) == 1_799_884_800
    assert sample(name, {"model": "gpt-4o", "successor": "gpt-6-luna"}) is None
    assert sample(name, {"model": "gpt-6-luna", "successor": "gpt-6.1-sol"}) == 1_798_761_600
    assert sample(name, {"model": "dall-e-3", "successor": ""}) is not None
    await gw.close()
    # With the shield off nothing is substituted: no successor is said to serve a model.
    off = open_gateway(base_config(O1GW__RETIREMENT__SHIELD="false"))
    sample = off.metrics.registry.get_sample_value
    assert sample(name, {"model": "gpt-4o", "successor": ""}) == 1_799_884_800
    assert sample(name, {"model": "gpt-4o", "successor": "gpt-6-luna"}) is None
    await off.close()
