"""The simulator's calendar and today's models, pure parts: dates, efforts, the bill, the knob,
the config setting."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.config import ConfigError, load_config
from gateway.simulator import bill, lifecycle
from gateway.simulator.catalog import model_list, model_object
from gateway.simulator.efforts import EFFORTS, effort_error, scaled_reasoning
from gateway.simulator.knobs import Knobs, parse_knobs
from gateway.simulator.openai_errors import SimError
from gateway.simulator.rules import check

LAUNCH = date(2024, 10, 1)


def test_a_model_serves_from_release_until_the_day_before_shutdown() -> None:
    assert lifecycle.serves("o1-mini-2024-09-12", date(2025, 10, 26))
    assert not lifecycle.serves("o1-mini-2024-09-12", date(2025, 10, 27))
    assert not lifecycle.serves("gpt-6.2-astra", date(2026, 11, 16))
    assert lifecycle.serves("gpt-6.2-astra", date(2026, 11, 17))
    assert lifecycle.serves("text-embedding-3-small", date(2099, 1, 1))
    # A fine-tune goes with its base.
    tuned = "ft:gpt-4o-mini-2024-07-18:org:demo:abc123"
    assert lifecycle.serves(tuned, date(2027, 1, 13))
    assert not lifecycle.serves(tuned, date(2027, 1, 14))


def test_refusal_is_openais_404() -> None:
    refused = lifecycle.refusal("dall-e-2", date(2026, 5, 12))
    assert refused is not None and refused.status == 404
    assert refused.payload() == {
        "error": {
            "message": "The model `dall-e-2` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    assert lifecycle.refusal("dall-e-2", date(2026, 5, 11)) is None
    # No model, or not a string: the endpoint's own checks answer.
    assert lifecycle.refusal(None, date(2030, 1, 1)) is None
    assert lifecycle.refusal(7, date(2030, 1, 1)) is None


def test_the_launch_list_is_unchanged_and_dated_lists_say_shutdowns() -> None:
    launch = [m["id"] for m in model_list(LAUNCH)["data"]]
    assert "gpt-6-luna" not in launch and len(launch) == 25
    assert model_object("gpt-4o", LAUNCH) == {
        "id": "gpt-4o",
        "object": "model",
        "created": 1715367049,
        "owned_by": "system",
    }
    later = model_object("gpt-4o-mini", date(2026, 8, 1))
    assert later is not None and later["shutdown_date"] == "2027-01-14"
    assert model_object("o1-preview", date(2026, 8, 1)) is None


def test_effort_errors() -> None:
    assert effort_error(None, (), "reasoning_effort") is None
    refused = effort_error("low", (), "reasoning_effort")
    assert refused is not None and refused.code == "unsupported_parameter"
    unknown = effort_error("huge", EFFORTS, "reasoning.effort")
    assert unknown is not None and unknown.code == "invalid_value"
    assert unknown.param == "reasoning.effort"
    out_of_range = effort_error("minimal", EFFORTS[2:], "reasoning_effort")
    assert out_of_range == SimError(
        400,
        "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. "
        "Supported values are: 'low', 'medium', 'high', 'xhigh', and 'max'.",
        param="reasoning_effort",
        code="unsupported_value",
    )
    assert effort_error("max", EFFORTS, "reasoning_effort") is None


def test_reasoning_grows_with_every_effort_step() -> None:
    for budget in (64, 1000, 4096):
        spent = [scaled_reasoning(budget, effort) for effort in EFFORTS]
        assert spent[0] == 0 and spent == sorted(set(spent))
        assert spent[EFFORTS.index("medium")] == budget


def test_chat_rules_of_todays_models() -> None:
    hello = [{"role": "user", "content": "hi"}]
    assert check({"model": "gpt-6-luna", "messages": hello, "logprobs": True}) is None
    refused = check(
        {"model": "gpt-6-luna", "messages": hello, "logprobs": True, "reasoning_effort": "low"}
    )
    assert refused is not None and refused.param == "logprobs"
    long_output = {"model": "gpt-6-astra", "messages": hello, "max_completion_tokens": 128_001}
    too_long = check(long_output)
    assert too_long is not None and too_long.param == "max_completion_tokens"
    stopped = check({"model": "gpt-6.1-sol", "messages": hello, "stop": ["x"]})
    assert stopped is not None and stopped.param == "stop"


def test_bill_prices_todays_models_exactly() -> None:
    luna = bill.tokens_charge("/v1/chat/completions", "gpt-6-luna", 1_000, 333, cached_tokens=400)
    # 600 * $0.10 + 400 * $0.01 + 333 * $0.50 per 1M = 60 + 4 + 166.5 micro-dollars, rounded up.
    assert luna.micros == 231
    astra = bill.tokens_charge("/v1/responses", "gpt-6.2-astra", 1_000, 10, cached_tokens=500)
    assert astra.micros == 8_000 + 400  # cached input at the input price
    # Over 272K input tokens: twice the input price, 1.5 times the output price.
    sol = bill.tokens_charge("/v1/chat/completions", "gpt-6.1-sol", 300_000, 1_001)
    assert sol.micros == 2 * 600_000 + 15_015
    assert bill.tokens_charge("/v1/batches", "gpt-6.1-sol", 300_000, 1_001, batch=True).micros == (
        (2 * 600_000 + 15_015) // 2 + 1
    )
    # Older models keep one price however long the prompt.
    assert bill.tokens_charge("/v1/chat/completions", "gpt-4o", 300_000).micros == 750_000


def test_the_today_knob() -> None:
    knobs = parse_knobs({"x-sim-today": "2026-12-01"})
    assert isinstance(knobs, Knobs) and knobs.today == date(2026, 12, 1)
    for bad in ("2026-02-30", "2026-1-01", "20261201", ""):
        error = parse_knobs({"x-sim-today": bad})
        assert isinstance(error, SimError) and error.status == 400


def test_the_today_setting() -> None:
    base = "models:\n  gpt-4o:\n    upstream: gpt-4o\n    context: 128000\n    max_output: 16384\n"
    assert load_config(base, {}).simulator.today == "2024-10-01"
    # Unquoted, YAML reads a date: taken as its ISO text.
    assert load_config(base + "simulator:\n  today: 2026-12-01\n", {}).simulator.today == (
        "2026-12-01"
    )
    with pytest.raises(ConfigError, match=r"simulator\.today: expected a date as YYYY-MM-DD"):
        load_config(base + "simulator:\n  today: next week\n", {})
