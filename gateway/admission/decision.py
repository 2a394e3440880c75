"""What an admission decided, and what the caller is told: the script's reply decoded, the
`x-ratelimit-*` headers, and the 429 a refusal answers with. Pure: the time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.admission.plan import REQUESTS, TOKENS, Bucket, Plan, WeeklyCap
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.headers import go_duration

PERIOD_MS = 60_000

BUDGET = "budget"


@dataclass(frozen=True, slots=True)
class Window:
    """What `x-ratelimit-*` reports for one limit."""

    kind: str
    limit: int
    remaining: int
    reset_ms: int


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    refused_by: Bucket | WeeklyCap | str | None  # BUDGET for the budget
    wait_ms: int  # -1: waiting will not help
    windows: tuple[Window, ...]
    spend: int
    held: int
    degraded: bool = False  # decided without Redis


def refusal_kind(by: Bucket | WeeklyCap | str | None) -> str:
    """The metrics label of what refused an admission."""
    if isinstance(by, Bucket):
        return by.kind
    return "weekly_messages" if isinstance(by, WeeklyCap) else "budget"


def decode_admit(plan: Plan, reply: Sequence[int]) -> Decision:
    status, refused, wait, spend, held = reply[:5]
    rest = reply[5:]
    windows: list[Window] = []
    for i, bucket in enumerate(plan.buckets):
        windows.append(Window(bucket.kind, bucket.limit, rest[2 * i], rest[2 * i + 1]))
    offset = 2 * len(plan.buckets)
    for j, cap in enumerate(plan.weekly):
        windows.append(Window(REQUESTS, cap.cap, rest[offset + 2 * j], rest[offset + 2 * j + 1]))
    refused_by: Bucket | WeeklyCap | str | None = None
    if refused:
        if refused <= len(plan.buckets):
            refused_by = plan.buckets[refused - 1]
        elif refused <= len(plan.buckets) + len(plan.weekly):
            refused_by = plan.weekly[refused - len(plan.buckets) - 1]
        else:
            refused_by = BUDGET
    return Decision(status in (1, 2), refused_by, wait, tuple(windows), spend, held)


def ratelimit_headers(windows: Sequence[Window], refused: bool = False) -> list[tuple[str, str]]:
    """`x-ratelimit-*` for the tightest request limit and the tightest token limit."""
    out: list[tuple[str, str]] = []
    for kind in (REQUESTS, TOKENS):
        candidates = [w for w in windows if w.kind == kind]
        if not candidates:
            continue
        tight = min(candidates, key=lambda w: (w.remaining, -w.reset_ms))
        out += [
            (f"x-ratelimit-limit-{kind}", str(tight.limit)),
            (f"x-ratelimit-remaining-{kind}", "0" if refused else str(tight.remaining)),
            (f"x-ratelimit-reset-{kind}", go_duration(tight.reset_ms / 1000)),
        ]
    return out


def refusal(decision: Decision, plan: Plan, budget_reset: datetime) -> GatewayError:
    """The 429 OpenAI would send, naming the limit, its value and when to retry."""
    who = f"team {plan.team}"
    by = decision.refused_by
    headers = dict(ratelimit_headers(decision.windows, refused=True))
    if by == BUDGET or not isinstance(by, Bucket | WeeklyCap):
        return errors.budget_exceeded(
            who=who, budget=plan.budget or 0, spent=decision.spend, held=decision.held,
            reserve=plan.reserve, resets_at=budget_reset, headers=headers,
        )  # fmt: skip
    kind = by.kind if isinstance(by, Bucket) else REQUESTS
    limit = by.limit if isinstance(by, Bucket) else by.cap
    requested = by.cost if isinstance(by, Bucket) else 1
    scope = by.scope or who
    if decision.wait_ms < 0:
        return errors.request_over_limit(
            model=plan.model, scope=scope, label=by.label, kind=kind, limit=limit,
            requested=requested, headers=headers,
        )  # fmt: skip
    window = next((w for w in decision.windows if w.kind == kind and w.limit == limit), None)
    used = limit - window.remaining if window is not None else limit
    return errors.rate_limit_reached(
        model=plan.model, scope=scope, label=by.label, kind=kind, limit=limit, used=used,
        requested=requested, wait_ms=decision.wait_ms, headers=headers,
    )  # fmt: skip


def next_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def month_key(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"
