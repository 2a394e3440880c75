"""The retirement shield's decisions, and the line-ups and shutdown days config accepts."""

from __future__ import annotations

import re

import pytest

from gateway.config import Capabilities, ConfigError, ModelConfig, load_config
from gateway.routing.retirement import Retiring, Substitution, refused, retired, retiring
from tests.conftest import ROOT

SHIPPED = (ROOT / "config" / "gateway.yaml").read_text()

MODELS = {
    "old": ModelConfig(upstream="old", shutdown="2025-07-28", successor="middle"),
    "middle": ModelConfig(upstream="middle", shutdown="2026-12-10", successor="new"),
    "new": ModelConfig(upstream="new"),
    "gone": ModelConfig(upstream="gone", shutdown="2026-05-12"),
}


def test_a_model_is_served_until_its_shutdown_day() -> None:
    assert retired(MODELS, "old", "2025-07-27") is None
    assert retired(MODELS, "old", "2025-07-28") == Substitution("old", "middle", "2025-07-28")
    assert retired(MODELS, "new", "2099-01-01") is None
    assert retired(MODELS, "unknown", "2099-01-01") is None


def test_successors_are_followed_to_one_still_served() -> None:
    assert retired(MODELS, "old", "2026-12-10") == Substitution("old", "new", "2025-07-28")
    assert retired(MODELS, "old", "2026-12-10").header == "old -> new"  # type: ignore[union-attr]


def test_a_shut_down_model_without_a_live_successor_has_none() -> None:
    assert retired(MODELS, "gone", "2026-05-12") == Substitution("gone", "", "2026-05-12")
    assert refused(MODELS, "gone", "2026-05-12")
    assert not refused(MODELS, "gone", "2026-05-11")
    assert not refused(MODELS, "old", "2099-01-01")  # its successors' successor serves it


def test_a_successor_that_reasons_stands_in_for_one_that_does_not_at_effort_none() -> None:
    def model(reasoning: bool, *efforts: str, successor: str = "") -> ModelConfig:
        caps = Capabilities(reasoning_effort=efforts)
        return ModelConfig(
            upstream="m", reasoning=reasoning, capabilities=caps,
            shutdown="2027-01-14" if successor else "", successor=successor,
        )  # fmt: skip

    models = {
        "chat": model(False, successor="thinks"),
        "reasoner": model(True, successor="thinks"),
        "plain": model(False, successor="always-thinks"),
        "thinks": model(True, "none", "low", "high"),
        "always-thinks": model(True, "low", "high"),
    }
    assert retired(models, "chat", "2027-01-14") == Substitution(
        "chat", "thinks", "2027-01-14", "none"
    )
    # One that reasons already is served at the successor's own default.
    assert retired(models, "reasoner", "2027-01-14") == Substitution(
        "reasoner", "thinks", "2027-01-14"
    )
    # A successor that cannot be asked not to reason is asked nothing.
    assert retired(models, "plain", "2027-01-14") == Substitution(
        "plain", "always-thinks", "2027-01-14"
    )
    shipped = load_config(SHIPPED, {}).models
    assert retired(shipped, "gpt-4o", "2027-01-14") == Substitution(
        "gpt-4o", "gpt-6-luna", "2027-01-14", "none"
    )
    assert retired(shipped, "o1-preview", "2027-01-14") == Substitution(
        "o1-preview", "gpt-6.2-astra", "2025-07-28"
    )


def test_retiring_lists_the_notice_window_soonest_first() -> None:
    assert retiring(MODELS, "2026-12-05", 90, True) == [
        Retiring("old", "2025-07-28", -495, "middle"),
        Retiring("gone", "2026-05-12", -207, ""),
        Retiring("middle", "2026-12-10", 5, "new"),
    ]
    assert [r.model for r in retiring(MODELS, "2024-10-01", 30, True)] == []
    # A model shut down already is listed with the model serving it today, as requests are.
    assert retiring(MODELS, "2026-12-11", 0, True) == [
        Retiring("old", "2025-07-28", -501, "new"),
        Retiring("gone", "2026-05-12", -213, ""),
        Retiring("middle", "2026-12-10", -1, "new"),
    ]
    # Without the shield nothing is substituted: the days stay, no successor serves.
    assert retiring(MODELS, "2026-12-05", 90, False) == [
        Retiring("old", "2025-07-28", -495, ""),
        Retiring("gone", "2026-05-12", -207, ""),
        Retiring("middle", "2026-12-10", 5, ""),
    ]


def test_the_shipped_line_ups_resolve_the_policies() -> None:
    config = load_config(SHIPPED, {})
    auto = config.routing.policies["auto"]
    assert (auto.general_model, auto.mini_model, auto.preview_model) == (
        "gpt-4o", "o1-mini", "o1-preview",
    )  # fmt: skip
    cheap = config.routing.policies["auto-cheap"]
    assert cheap.preview_model == cheap.mini_model == "o1-mini"
    today = load_config(SHIPPED, {"O1GW__ROUTING__LINEUP": "openai-2026-12"})
    auto = today.routing.policies["auto"]
    assert (auto.general_model, auto.mini_model, auto.preview_model) == (
        "gpt-6-luna", "gpt-6.1-sol", "gpt-6.2-astra",
    )  # fmt: skip
    assert (auto.general_effort, auto.mini_effort, auto.preview_effort) == (
        ("none",), ("low", "medium", "high"), ("medium", "high", "xhigh"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"O1GW__ROUTING__LINEUP": "nope"}, "routing.lineup: unknown line-up 'nope'"),
        ({"O1GW__MODELS__O1-MINI__SHUTDOWN": "soon"}, "models.o1-mini.shutdown: expected a date"),
        ({"O1GW__MODELS__O1-MINI__SUCCESSOR": "gpt-9"}, "models.o1-mini.successor: unknown model"),
        (
            {"O1GW__MODELS__GPT-6-LUNA__SUCCESSOR": "gpt-4o"},
            "models.gpt-4o.successor: a loop (gpt-4o -> gpt-6-luna -> gpt-4o)",
        ),
        ({"O1GW__RETIREMENT__TODAY": "2026-13-01"}, "retirement.today: expected a date"),
        (
            {"O1GW__LINEUPS__OPENAI-2026-12__GENERAL__EFFORT": "turbo"},
            "lineups.openai-2026-12.general.effort[0]: gpt-6-luna does not take effort 'turbo'",
        ),
        (
            {"O1GW__MODELS__GPT-4O__CAPABILITIES__REASONING_EFFORT": "extreme"},
            "models.gpt-4o.capabilities.reasoning_effort[0]: unknown effort 'extreme'",
        ),
    ],
)
def test_config_refuses_bad_line_ups_and_lifecycles(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(SHIPPED, env)


def test_a_policy_may_name_its_own_line_up_and_efforts() -> None:
    config = load_config(
        SHIPPED,
        {
            "O1GW__ROUTING__POLICIES__TODAY__LINEUP": "openai-2026-12",
            "O1GW__ROUTING__POLICIES__TODAY__TOP_ROLE": "reasoning",
            "O1GW__ROUTING__POLICIES__TODAY__MINI_EFFORT": "high",
        },
    )
    policy = config.routing.policies["today"]
    assert (policy.preview_model, policy.mini_effort, policy.preview_effort) == (
        "gpt-6.1-sol", ("high",), ("low", "medium", "high"),
    )  # fmt: skip
    with pytest.raises(
        ConfigError, match=re.escape("routing.policies.today.mini_effort: gpt-6.1-sol does")
    ):
        load_config(
            SHIPPED,
            {
                "O1GW__ROUTING__POLICIES__TODAY__LINEUP": "openai-2026-12",
                "O1GW__ROUTING__POLICIES__TODAY__MINI_EFFORT": "none",
            },
        )
