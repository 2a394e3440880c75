"""Creating a job the gateway follows until it ends (a batch, a fine-tuning job): its worst case
held for as long as the job may run, the call forwarded once, the job recorded as the team's
and followed (`runtime.follower`), which settles the hold from what the job reports when it
ends. A creation upstream refuses frees the hold at once. Pricing a job reads its file from
upstream first: the creation counts against the request limits before that read
(`counted_before_reading`), and its hold does not count it again."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import Plan, batched, counted_once
from gateway.admission.redis_side import Ticket
from gateway.endpoints.attempt import Attempt
from gateway.endpoints.owned import Kind, attempt_for, counted, create_owned
from gateway.server.caller import Caller
from gateway.server.entry import exchange_of, gateway_of
from gateway.wire import errors
from gateway.wire.errors import GatewayError

log = logging.getLogger("gateway")


class FollowedAttempt(Attempt):
    """A job's creation: its hold is settled when the job ends, not when it is created."""

    __slots__ = ()

    def settle(self, status: int, content: bytes) -> None:
        if status >= 400 and self.ticket is not None:
            self.ticket.release()


async def create_followed(
    request: Request,
    caller: Caller,
    kind: Kind,
    model: str,
    reserve: int,
    hold_s: float,
    body: bytes,
    counted_as: Plan | None,
    limited: Sequence[str] = (),
    **extra: Any,
) -> Response:
    """Create a job of `kind` with `body`, holding `reserve` against `model` (a configured
    name: its limits apply) for `hold_s`; `counted_as`: the count `counted_before_reading`
    took, which the hold does not take again; `limited`: every configured model the job
    calls (a batch's lines'; `model` first), one request of each counted against its
    per-minute limits, instead of `model` alone; `extra` is what the job's kind is priced
    by."""
    gw = gateway_of(request)
    exchange = exchange_of(request.scope)
    exchange.model = exchange.routed_model = model
    attempt = FollowedAttempt(gw, request, exchange, caller, kind.upstream, None)

    async def hold(attempt: Attempt) -> None:
        if gw.config.admission.enabled:
            shapes = [
                gw.plan_shapes().get(
                    caller.team, caller.key, name, endpoint=exchange.endpoint, counts_tokens=False
                )
                for name in limited or (model,)
            ]
            plan = batched(shapes, gw.new_hold_id(), reserve)
            if counted_as is not None:
                plan = counted_once(plan, (counted_as,))
            await attempt.admit(dataclasses.replace(plan, hold_ttl_s=hold_s), None, 0)

    response, job = await create_owned(attempt, kind, body, hold)
    ticket = attempt.ticket
    if job is None and response.status_code == 200:
        raise unnamed_job(kind, ticket)
    if job is not None and ticket is not None and gw.follower is not None:
        team = caller.team
        try:
            await gw.follower.follow(
                kind.name, job["id"], team.name, team.upstream_key_env, ticket.plan,
                written=ticket.written, **extra,
            )  # fmt: skip
        except (RedisError, OSError) as exc:
            # Upstream made the job: the client is told so (see `create_owned`). Unfollowed,
            # it is charged its hold now (never less than it may cost), which lands once Redis
            # is back: a hold admitted without Redis was never written, and would never
            # expire into a charge.
            log.error("cannot follow %s %s: %r", kind.name, job["id"], exc)
            ticket.settle_at_reserve()
    return response


def unnamed_job(kind: Kind, ticket: Ticket | None) -> GatewayError:
    """A creation upstream answered 200 without the job's id: the job may run, and be billed,
    where the gateway can neither follow it nor the team reach it. It is charged its hold now
    (never less than the job may cost; left alone, the hold would be charged on expiry only
    if Redis had written it), and the client is told, not to be retried: another try would
    make another job."""
    if ticket is not None:
        ticket.settle_at_reserve()
    exc = errors.upstream_invalid_answer(
        f"a 200 without the {kind.name}'s id. It may have been created, and is charged as "
        f"much as it may cost; list your {kind.name} objects before creating it again"
    )
    errors.mark_retries_spent(exc.headers)
    if ticket is not None:
        exc.headers.update(ticket.headers)
    return exc


async def counted_before_reading(request: Request, caller: Caller, kind: Kind) -> Plan | None:
    """Count the creation of a job of `kind` against the team's request limits before its file
    is read from upstream to price it (the whole file): a creation refused for what the file
    holds has called upstream all the same, and one over the limits reads nothing. The plan
    it was counted by, for `create_followed` (None: admission is off)."""
    attempt = attempt_for(request, caller, kind.upstream)
    await counted(attempt, budget=True)
    return attempt.ticket.plan if attempt.ticket is not None else None
