"""Which limits apply to one request, and the admission plan that checks them. Pure.

Limits come from four places, most general first: the team's tier, a named limit profile, the
team's own overrides, and the calling key's own limits. Team limits and key limits are separate
buckets: a request must fit both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.admission.usage_breakdown import label_with_model, usage_label
from gateway.config import Config, Limits, ModelLimits
from gateway.teams.records import Key, Team
from gateway.teams.records import tag as tag  # re-exported: plans and tests name keys by it

REQUESTS = "requests"
TOKENS = "tokens"
RPM = "requests per min (RPM)"
TPM = "tokens per min (TPM)"
WEEK = "messages per week"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One per-minute limit: `limit` per minute, this request costs `cost`."""

    key: str
    kind: str  # REQUESTS or TOKENS
    limit: int
    cost: int
    label: str  # for messages: "requests per min (RPM)" etc.
    scope: str = ""  # who the limit belongs to, for messages: "team NAME" or "key ID"


@dataclass(frozen=True, slots=True)
class WeeklyCap:
    prefix: str
    cap: int
    label: str
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    team: str
    tag: str
    hold_id: str
    model: str
    buckets: tuple[Bucket, ...]
    weekly: tuple[WeeklyCap, ...]
    budget: int | None  # micro-dollars for the month; None = unlimited
    reserve: int  # micro-dollars held until settled
    est_tokens: int
    # How long the hold lives unsettled (None: admission.hold_ttl_s); a batch's lives as long
    # as its completion window.
    hold_ttl_s: float | None = None
    endpoint: str = "other"  # the endpoint the request came in on (as metrics name it)
    # What its usage is filed under (`usage_breakdown`); "" files it under the model alone.
    label: str = ""

    @property
    def token_buckets(self) -> tuple[Bucket, ...]:
        return tuple(b for b in self.buckets if b.kind == TOKENS)

    def refiled(self, model: str) -> Plan:
        """This plan with its usage filed under `model` (a pass-through call names its model
        only in its body or its answer); the limits stay those it was admitted by."""
        label = label_with_model(self.label, model) if self.label else ""
        return dataclasses.replace(self, model=model, label=label)

    def free(self) -> Plan:
        """This plan for a call that costs nothing: counted against the request limits, never
        refused for the budget (a team that spent it still reads what it has, gets free hits)."""
        return dataclasses.replace(self, budget=None)


def counted_once(plan: Plan, earlier: tuple[Plan, ...]) -> Plan:
    """`plan` for another try of a request whose `earlier` tries were admitted (a fallback
    model, a try again with a patch): a request limit one of them took the request from costs
    it nothing again. The client made one request, however many models try it; a model's own
    limit still counts the try it makes."""
    taken = {b.key for tried in earlier for b in tried.buckets if b.kind == REQUESTS}
    if not any(b.key in taken for b in plan.buckets):
        return plan
    buckets = tuple(
        dataclasses.replace(b, cost=0) if b.kind == REQUESTS and b.key in taken else b
        for b in plan.buckets
    )
    return dataclasses.replace(plan, buckets=buckets)


def batched(shapes: Sequence[PlanShape], hold_id: str, reserve: int) -> Plan:
    """One plan for a batch: one request against the per-minute request limits of each model
    its lines name, and once against the team's and the key's overall ones, so that a model
    whose limit is spent is not reached by batching it. A batch's lines are not each counted:
    upstream runs them in its batch queue, apart from the per-minute limits requests spend,
    and a batch of more lines than a minute allows is what batches are for. `shapes`: one per
    model the lines name, the batch's model (its usage is filed under it) first; another
    model's own limits name it, so a refusal says whose limit it was."""
    first = shapes[0]
    buckets: dict[str, Bucket] = {}
    weekly: dict[str, WeeklyCap] = {}
    for shape in shapes:
        for slot in shape.slots:
            if not isinstance(slot, Bucket) or slot.key in buckets:
                continue
            bucket = slot
            if shape.model != first.model:
                bucket = dataclasses.replace(slot, label=f"{slot.label} of {shape.model}")
            buckets[bucket.key] = bucket
        weekly.update((cap.prefix, cap) for cap in shape.weekly)
    return Plan(
        team=first.team,
        tag=first.tag,
        hold_id=hold_id,
        model=first.model,
        buckets=tuple(buckets.values()),
        weekly=tuple(weekly.values()),
        budget=first.budget,
        reserve=reserve,
        est_tokens=0,
        endpoint=first.endpoint,
        label=first.label,
    )


def merge(base: Limits, over: Limits) -> Limits:
    """`over` wins field by field, per model too; the result has no profile left to resolve."""
    models = dict(base.models)
    for name, limits in over.models.items():
        if name in models:
            models[name] = ModelLimits(
                *(
                    getattr(limits, f.name)
                    if getattr(limits, f.name) is not None
                    else getattr(models[name], f.name)
                    for f in dataclasses.fields(ModelLimits)
                )
            )
        else:
            models[name] = limits
    return Limits(
        requests_per_minute=over.requests_per_minute
        if over.requests_per_minute is not None
        else base.requests_per_minute,
        tokens_per_minute=over.tokens_per_minute
        if over.tokens_per_minute is not None
        else base.tokens_per_minute,
        models=models,
    )


def resolve(config: Config, limits: Limits) -> Limits:
    """Apply a limits' named profile under its explicit values."""
    profile = config.limit_profiles.get(limits.profile) if limits.profile else None
    return merge(profile, limits) if profile is not None else merge(Limits(), limits)


def team_limits(config: Config, team: Team) -> Limits:
    tier = config.tiers.get(team.tier)
    base = resolve(config, tier.limits) if tier is not None else Limits()
    return merge(base, resolve(config, team.limits))


def team_budget(config: Config, team: Team) -> int | None:
    if team.budget_usd is not None:
        return int(team.budget_usd)
    tier = config.tiers.get(team.tier)
    return int(tier.budget_usd) if tier is not None else None


def model_allowed(config: Config, team: Team, model: str) -> bool:
    tier = config.tiers.get(team.tier)
    if tier is None or ("*" not in tier.models and model not in tier.models):
        return False
    return team.models is None or model in team.models


def plan(
    config: Config,
    team: Team,
    key: Key | None,
    model: str,
    *,
    hold_id: str,
    est_tokens: int,
    reserve: int,
    endpoint: str,
    counts_tokens: bool = True,
    named: str = "",
) -> Plan:
    """Everything the admission script needs for one request of `model` on `endpoint`.

    `counts_tokens` is False for calls whose token use is unknown up front (pass-through): they
    count against request limits only, and are charged from the usage they report. `named`:
    the shut-down model the request named, which `model` serves (`shape`).
    """
    found = shape(config, team, key, model, endpoint, counts_tokens, named)
    return found.plan(hold_id, est_tokens, reserve)


@dataclass(frozen=True, slots=True)
class PlanShape:
    """What a plan is for one (team, key, model, endpoint): everything but the request's own
    numbers.

    Working it out merges tier, profile, team and key limits; it changes only when the team or
    key record does, so the request path reuses it (`PlanShapes`).
    """

    team: str
    tag: str
    model: str
    # In the script's order. A Bucket is ready to use (requests cost 1); a token limit is
    # (key, limit, scope) and costs the request's estimate.
    slots: tuple[Bucket | tuple[str, int, str], ...]
    weekly: tuple[WeeklyCap, ...]
    budget: int | None
    counts_tokens: bool
    endpoint: str
    label: str

    def plan(self, hold_id: str, est_tokens: int, reserve: int) -> Plan:
        buckets = tuple(
            slot if isinstance(slot, Bucket)
            else Bucket(slot[0], TOKENS, slot[1], est_tokens, TPM, slot[2])
            for slot in self.slots
        )  # fmt: skip
        return Plan(
            team=self.team,
            tag=self.tag,
            hold_id=hold_id,
            model=self.model,
            buckets=buckets,
            weekly=self.weekly,
            budget=self.budget,
            reserve=reserve,
            est_tokens=est_tokens if self.counts_tokens else 0,
            endpoint=self.endpoint,
            label=self.label,
        )


def shape(
    config: Config,
    team: Team,
    key: Key | None,
    model: str,
    endpoint: str,
    counts_tokens: bool,
    named: str = "",
) -> PlanShape:
    """`named`: the shut-down model the request named, served by its successor `model`. The
    team's and key's limits on it apply as well as the successor's own: the team is served as
    allowed that model, and its caps (a weekly message cap above all) must not lapse on the
    model's shutdown day."""
    t = tag(team.name)
    named = named if named != model else ""
    limited = (model, named) if named else (model,)
    slots: list[Bucket | tuple[str, int, str]] = []
    weekly: list[WeeklyCap] = []
    scopes = [("team", f"team {team.name}", team_limits(config, team))]
    if key is not None:
        scopes.append((f"key:{key.id}", f"key {key.id}", resolve(config, key.limits)))
    for scope, owner, limits in scopes:
        per_models = [(m, limits.models.get(m, ModelLimits())) for m in limited]
        for which, rpm, tpm in (
            ("*", limits.requests_per_minute, limits.tokens_per_minute),
            *((m, per.requests_per_minute, per.tokens_per_minute) for m, per in per_models),
        ):
            where = f"{scope}:{which}"
            if rpm is not None:
                rpm_label = RPM if which != named else f"{RPM} of {named}"
                slots.append(Bucket(f"{t}:b:{where}:r", REQUESTS, rpm, 1, rpm_label, owner))
            if tpm is not None and counts_tokens:
                slots.append((f"{t}:b:{where}:t", tpm, owner))
        for m, per in per_models:
            if per.messages_per_week is not None:
                week = WEEK if m != named else f"{WEEK} of {named}"
                weekly.append(WeeklyCap(f"{t}:w:{scope}:{m}", per.messages_per_week, week, owner))
    return PlanShape(
        team=team.name,
        tag=t,
        model=model,
        slots=tuple(slots),
        weekly=tuple(weekly),
        budget=team_budget(config, team),
        counts_tokens=counts_tokens,
        endpoint=endpoint,
        label=usage_label(model, endpoint, key.id if key is not None else ""),
    )


class PlanShapes:
    """Plan shapes remembered per (team, key, model, endpoint). An entry serves only the very
    team and key records it was made from: the team store hands out new records when they
    change."""

    def __init__(self, config: Config, max_entries: int = 10_000) -> None:
        self._config = config
        self._max = max_entries
        self._known: dict[
            tuple[str, str, str, str, bool, str], tuple[Team, Key | None, PlanShape]
        ] = {}

    def get(
        self,
        team: Team,
        key: Key | None,
        model: str,
        *,
        endpoint: str,
        counts_tokens: bool = True,
        named: str = "",
    ) -> PlanShape:
        index = (
            team.name, key.id if key is not None else "", model, endpoint, counts_tokens, named
        )  # fmt: skip
        known = self._known.get(index)
        if known is not None and known[0] is team and known[1] is key:
            return known[2]
        if len(self._known) >= self._max:
            self._known.clear()
        found = shape(self._config, team, key, model, endpoint, counts_tokens, named)
        self._known[index] = (team, key, found)
        return found
