"""What an admission decided, and what the caller is told: the script's reply decoded, the
`x-ratelimit-*` headers, and the 429 a refusal answers with. Pure: the time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.admission.plan import REQUESTS, TOKENS, Bucket, Plan, WeeklyCap
from gateway.admission.pricing import largest_completion_cap
from gateway.config import Price
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


@dataclass(frozen=True, slots=True)
class OutputCap:
    """What a request's completion cap is, for a refusal to say which cap would fit: the
    field that sets it, the prices and prompt its worst case was worked out from, how many
    answers it asks for, and the bounds the cap may take."""

    param: str  # "max_completion_tokens" or "max_output_tokens"
    price: Price
    prompt_tokens: int
    copies: int
    most: int  # the model's output limit
    least: int = 1  # the field's minimum
    fees: int = 0  # held beside the tokens whatever the cap (hosted tools)

    def largest_within(self, left: int) -> int | None:
        """The largest cap whose worst case fits in `left` micro-dollars (None: none does)."""
        if left < self.fees:
            return None
        cap = largest_completion_cap(self.price, self.prompt_tokens, self.copies, left - self.fees)
        cap = min(cap, self.most)
        return cap if cap >= self.least else None


def settling_may_admit(decision: Decision) -> bool:
    """Whether a refusal may be only this team's own answered calls not yet settled: their
    holds count against the budget, and their token estimates against the token limits,
    until they are. A refusal by anything else stands whatever settles."""
    if decision.admitted or decision.degraded:
        return False
    by = decision.refused_by
    if by == BUDGET:
        return decision.held > 0
    return isinstance(by, Bucket) and by.kind == TOKENS and decision.wait_ms >= 0


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


def ratelimit_headers(windows: Sequence[Window], refused: str = "") -> list[tuple[str, str]]:
    """`x-ratelimit-*` for the tightest request limit and the tightest token limit; `refused`:
    the kind of limit (REQUESTS, TOKENS) that refused the request, of which none is left."""
    out: list[tuple[str, str]] = []
    for kind in (REQUESTS, TOKENS):
        candidates = [w for w in windows if w.kind == kind]
        if not candidates:
            continue
        tight = min(candidates, key=lambda w: (w.remaining, -w.reset_ms))
        out += [
            (f"x-ratelimit-limit-{kind}", str(tight.limit)),
            (f"x-ratelimit-remaining-{kind}", "0" if kind == refused else str(tight.remaining)),
            (f"x-ratelimit-reset-{kind}", go_duration(tight.reset_ms / 1000)),
        ]
    return out


def refusal(
    decision: Decision, plan: Plan, budget_reset: datetime, cap: OutputCap | None = None
) -> GatewayError:
    """The 429 OpenAI would send, naming the limit, its value and when to retry; `cap` lets a
    budget refusal say which completion cap would fit."""
    who = f"team {plan.team}"
    by = decision.refused_by
    # A budget refusal leaves every rate limit as it is.
    refused = by.kind if isinstance(by, Bucket) else REQUESTS if isinstance(by, WeeklyCap) else ""
    headers = dict(ratelimit_headers(decision.windows, refused))
    if by == BUDGET or not isinstance(by, Bucket | WeeklyCap):
        budget = plan.budget or 0
        if decision.spend >= budget:
            return errors.budget_exceeded(
                who=who, budget=budget, spent=decision.spend, held=decision.held,
                reserve=plan.reserve, resets_at=budget_reset, headers=headers,
            )  # fmt: skip
        # Nothing is exceeded: this request's worst case is more than what is left.
        left = max(budget - decision.spend - decision.held, 0)
        return errors.request_over_budget(
            who=who, budget=budget, spent=decision.spend, held=decision.held,
            reserve=plan.reserve, left=left,
            param=cap.param if cap is not None else None,
            fitting_cap=cap.largest_within(left) if cap is not None else None,
            fits_once_settled=decision.spend + plan.reserve <= budget,
            resets_at=budget_reset, headers=headers,
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
