"""The metrics registry: label folding, scrape-time gauges, exposition formats."""

from __future__ import annotations

import pytest

from gateway.observability.metrics import Metrics, TeamBudget, patch_kind, route_reason
from gateway.routing.heuristic import Decision
from gateway.wire.usage import Usage


@pytest.mark.parametrize(
    ("patch", "kind"),
    [
        ("system_messages", "system_message"),
        ("stream", "fake_stream"),
        ("max_tokens", "max_tokens"),
        ("temperature", "sampling_params"),
        ("stop", "sampling_params"),
        ("tool_choice", "tools"),
        ("response_format", "response_format"),
        ("anything-new", "other"),
    ],
)
def test_patch_names_fold_into_few_kinds(patch: str, kind: str) -> None:
    assert patch_kind(patch) == kind


def test_route_reasons_are_a_closed_set() -> None:
    assert route_reason(Decision("gpt-4o", 0.0, "general", ("images",))) == "images"
    assert route_reason(Decision("gpt-4o", 0.0, "general", ("no user text",))) == "no_text"
    assert route_reason(Decision("o1-mini", 0.5, "math", ("domain: math",))) == "math"
    stepped = ("domain: science", "budget: 95% spent (step-down at 90%): o1-preview -> o1-mini")
    assert route_reason(Decision("o1-mini", 0.9, "science", stepped)) == "budget_step_down"


def test_usage_counts_every_kind_and_the_spend_by_endpoint() -> None:
    metrics = Metrics()
    usage = Usage(prompt_tokens=100, completion_tokens=50, cached_tokens=20, reasoning_tokens=30)
    metrics.count_usage("t", "o1-mini", "chat", usage, 1234)
    metrics.count_usage("t", "o1-mini", "chat", usage, 1)
    metrics.count_usage("t", "o1-mini", "responses", usage, 7)
    body, _ = metrics.render("", True, [])
    text = body.decode()
    spend = "gateway_spend_microdollars_total"
    assert f'{spend}{{endpoint="chat",model="o1-mini",team="t"}} 1235.0' in text
    assert f'{spend}{{endpoint="responses",model="o1-mini",team="t"}} 7.0' in text
    for kind, value in (("prompt", 200), ("cached", 40), ("completion", 100), ("reasoning", 60)):
        labels = f'endpoint="chat",kind="{kind}",model="o1-mini",team="t"'
        assert f"gateway_tokens_total{{{labels}}} {value}.0" in text


def test_scrape_time_gauges_and_formats() -> None:
    metrics = Metrics()
    budgets = [TeamBudget("a", 5_000_000, 7_000_000), TeamBudget("b", None, 12)]
    body, content_type = metrics.render("text/plain", False, budgets)
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert "gateway_redis_up 0.0" in text
    assert 'gateway_budget_limit_microdollars{team="a"} 5e+06' in text
    assert 'gateway_budget_remaining_microdollars{team="a"} 0.0' in text  # never negative
    assert 'gateway_budget_spent_microdollars{team="b"} 12.0' in text
    assert 'gateway_budget_limit_microdollars{team="b"}' not in text  # no budget, no limit
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0", True, [])
    assert content_type.startswith("application/openmetrics-text")
    assert body.decode().rstrip().endswith("# EOF")
    assert b"gateway_redis_up 1.0" in body
    # The scrape-time collector does not stay registered: a second scrape renders cleanly.
    assert metrics.render("", True, [])[0].count(b"# TYPE gateway_redis_up gauge") == 1


def test_key_ids_label_requests_only_when_switched_on() -> None:
    on = Metrics(key_id_labels=True)
    on.count_request(("t", "chat", "gpt-4o", "gpt-4o", "2xx", "key_1"), "chat", 0.1, 0.05, 0.001)
    assert b'key_id="key_1"' in on.render("", True, [])[0]
    off = Metrics()
    off.count_request(("t", "chat", "gpt-4o", "gpt-4o", "2xx"), "chat", 0.1, None, None)
    assert b"key_id" not in off.render("", True, [])[0]
