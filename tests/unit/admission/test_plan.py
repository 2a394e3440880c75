from __future__ import annotations

from gateway.admission.plan import (
    REQUESTS,
    TOKENS,
    PlanShapes,
    batched,
    counted_once,
    merge,
    model_allowed,
    plan,
    tag,
    team_budget,
    team_limits,
)
from gateway.config import Limits, ModelLimits, Usd
from gateway.teams.records import Key, Team
from tests.conftest import base_config

CONFIG = base_config(OPENAI_API_KEY="sk-x")


def test_tier_defaults_match_openais_launch_table() -> None:
    budgets = {name: team_budget(CONFIG, Team("t", name)) for name in CONFIG.tiers}
    assert budgets == {
        "free": 100_000_000,
        "tier-1": 100_000_000,
        "tier-2": 500_000_000,
        "tier-3": 1_000_000_000,
        "tier-4": 5_000_000_000,
        "tier-5": 50_000_000_000,
    }
    # At launch o1 was for tier 5 only, at 20 requests per minute.
    assert not model_allowed(CONFIG, Team("t", "tier-4"), "o1-preview")
    assert model_allowed(CONFIG, Team("t", "tier-5"), "o1-preview")
    assert team_limits(CONFIG, Team("t", "tier-5")).models["o1-preview"].requests_per_minute == 20


def test_team_overrides_budget_limits_and_narrows_models() -> None:
    team = Team(
        "t",
        "tier-5",
        budget_usd=Usd(2_000_000_000),
        models=("gpt-4o",),
        limits=Limits(
            requests_per_minute=7, models={"o1-mini": ModelLimits(tokens_per_minute=900)}
        ),
    )
    assert team_budget(CONFIG, team) == 2_000_000_000
    limits = team_limits(CONFIG, team)
    assert limits.requests_per_minute == 7
    assert limits.tokens_per_minute == 30_000_000  # from the tier
    assert limits.models["o1-mini"] == ModelLimits(requests_per_minute=20, tokens_per_minute=900)
    assert model_allowed(CONFIG, team, "gpt-4o") and not model_allowed(CONFIG, team, "o1-mini")
    assert not model_allowed(CONFIG, Team("t", "no-such-tier"), "gpt-4o")


def test_the_chatgpt_plus_profile_gives_weekly_caps() -> None:
    team = Team("r", "tier-5", limits=Limits(profile="chatgpt-plus"))
    limits = team_limits(CONFIG, team)
    assert limits.models["o1-preview"].messages_per_week == 30
    assert limits.models["o1-mini"].messages_per_week == 50
    assert limits.models["o1-preview"].requests_per_minute == 20  # tier limits survive


def test_merge_prefers_the_override_field_by_field() -> None:
    base = Limits(requests_per_minute=1, tokens_per_minute=2, models={"m": ModelLimits(1, 2, 3)})
    over = Limits(tokens_per_minute=5, models={"m": ModelLimits(messages_per_week=9)})
    merged = merge(base, over)
    assert (merged.requests_per_minute, merged.tokens_per_minute) == (1, 5)
    assert merged.models["m"] == ModelLimits(1, 2, 9)


def test_plan_has_team_and_key_buckets_under_one_hash_tag() -> None:
    team = Team("platform", "tier-5", limits=Limits(profile="chatgpt-plus"))
    key = Key("key_1", "platform", "0" * 64, limits=Limits(requests_per_minute=3))
    p = plan(
        CONFIG, team, key, "o1-preview", hold_id="h", est_tokens=1200, reserve=77, endpoint="chat"
    )
    assert all(b.key.startswith(tag("platform") + ":") for b in p.buckets)
    kinds = [(b.scope, b.kind, b.limit, b.cost) for b in p.buckets]
    assert kinds == [
        ("team platform", REQUESTS, 10_000, 1),
        ("team platform", TOKENS, 30_000_000, 1200),
        ("team platform", REQUESTS, 20, 1),
        ("key key_1", REQUESTS, 3, 1),
    ]
    assert [(w.scope, w.cap) for w in p.weekly] == [("team platform", 30)]
    assert (p.budget, p.reserve, p.est_tokens) == (50_000_000_000, 77, 1200)
    assert (p.endpoint, p.label) == ("chat", "o1-preview\tchat\tkey_1")


def test_a_successor_serving_a_shut_down_model_fits_its_limits_too() -> None:
    team = Team("r", "tier-5", limits=Limits(profile="chatgpt-plus"))
    key = Key("key_1", "r", "0" * 64, limits=Limits(models={"o1-preview": ModelLimits(5, 6, 7)}))
    p = plan(
        CONFIG, team, key, "gpt-6.2-astra", hold_id="h", est_tokens=10, reserve=1,
        endpoint="chat", named="o1-preview",
    )  # fmt: skip
    buckets = [(b.key.rsplit(":", 2)[-2:], b.limit, b.label) for b in p.buckets]
    assert buckets == [
        (["*", "r"], 10_000, "requests per min (RPM)"),
        (["*", "t"], 30_000_000, "tokens per min (TPM)"),
        (["o1-preview", "r"], 20, "requests per min (RPM) of o1-preview"),
        (["o1-preview", "r"], 5, "requests per min (RPM) of o1-preview"),
        (["o1-preview", "t"], 6, "tokens per min (TPM)"),
    ]
    # Counted in the weekly counters the model named was counted in before its shutdown.
    assert [(w.prefix, w.cap, w.label) for w in p.weekly] == [
        (f"{tag('r')}:w:team:o1-preview", 30, "messages per week of o1-preview"),
        (f"{tag('r')}:w:key:key_1:o1-preview", 7, "messages per week of o1-preview"),
    ]
    # Usage is filed under the model that served (and was billed).
    assert (p.model, p.label) == ("gpt-6.2-astra", "gpt-6.2-astra\tchat\tkey_1")
    alone = plan(
        CONFIG, team, None, "gpt-6.2-astra", hold_id="h", est_tokens=10, reserve=1,
        endpoint="chat",
    )  # fmt: skip
    assert (len(alone.buckets), alone.weekly) == (2, ())
    shapes = PlanShapes(CONFIG)
    assert shapes.get(team, None, "gpt-6.2-astra", endpoint="chat").weekly == ()
    assert shapes.get(team, None, "gpt-6.2-astra", endpoint="chat", named="o1-preview").weekly


def test_pass_through_plans_count_requests_only() -> None:
    p = plan(
        CONFIG,
        Team("t", "tier-1"),
        None,
        "",
        hold_id="h",
        est_tokens=0,
        reserve=0,
        endpoint="other",
        counts_tokens=False,
    )
    assert [b.kind for b in p.buckets] == [REQUESTS]
    # Its usage is filed under the model it names or answers with; its limits stay the same.
    filed = p.refiled("gpt-4o")
    assert (filed.model, filed.label, filed.buckets) == ("gpt-4o", "gpt-4o\tother\t", p.buckets)


def test_plan_shapes_are_remembered_per_endpoint() -> None:
    shapes, team = PlanShapes(CONFIG), Team("t", "tier-5")
    key = Key("key_1", "t", "0" * 64)
    chat = shapes.get(team, key, "gpt-4o", endpoint="chat")
    assert shapes.get(team, key, "gpt-4o", endpoint="chat") is chat
    batch = shapes.get(team, key, "gpt-4o", endpoint="batches")
    assert (chat.label, batch.label) == ("gpt-4o\tchat\tkey_1", "gpt-4o\tbatches\tkey_1")
    assert batch.slots == chat.slots  # the same limits, filed apart


def test_a_batch_plan_counts_one_request_of_each_model_it_names() -> None:
    """A batch naming gpt-4o-mini first and o1-preview: one request against the team's overall
    limit and one against o1-preview's own, which names o1-preview; no tokens, whatever its
    lines. The creation counted before takes the overall request's place."""
    team = Team("b", "tier-5", limits=Limits(models={"o1-preview": ModelLimits(3, 2000)}))
    shapes = PlanShapes(CONFIG)
    p = batched(
        [
            shapes.get(team, None, model, endpoint="batches", counts_tokens=False)
            for model in ("gpt-4o-mini", "o1-preview")
        ],
        "h",
        99,
    )
    buckets = [(b.key.rsplit(":", 2)[-2:], b.kind, b.cost, b.label) for b in p.buckets]
    assert buckets == [
        (["*", "r"], REQUESTS, 1, "requests per min (RPM)"),
        (["o1-preview", "r"], REQUESTS, 1, "requests per min (RPM) of o1-preview"),
    ]
    assert (p.model, p.reserve, p.est_tokens, p.weekly) == ("gpt-4o-mini", 99, 0, ())
    creation = plan(
        CONFIG, team, None, "", hold_id="c", est_tokens=0, reserve=0, endpoint="batches",
        counts_tokens=False,
    )  # fmt: skip
    assert [b.cost for b in counted_once(p, (creation,)).buckets] == [0, 1]
