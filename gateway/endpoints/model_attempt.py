"""A try at one configured model (`ModelAttempt`): the phases chat and the Responses API
share on top of `Attempt`'s (patch, hold the model's worst case, answer), and the upstream
call an admission makes ready while it is in flight (`EarlyCall`)."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.decision import OutputCap
from gateway.admission.plan import Plan, counted_once
from gateway.admission.pricing import at_tier, served_price, worst_case_micros
from gateway.admission.tool_fees import ToolFees
from gateway.config import Capabilities, ModelConfig
from gateway.endpoints.attempt import Attempt
from gateway.observability.record import Exchange
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller
from gateway.upstream.dispatch import PreparedCall
from gateway.wire.errors import GatewayError
from gateway.wire.validation import MIN_OUTPUT_TOKENS

log = logging.getLogger("gateway")


class ModelAttempt(Attempt, ABC):
    """A try at one configured model, in its phases: `patch` the request for what the model
    lacks, hold its worst case (when admission is on), `answer`. Whatever fails frees the hold;
    an early call the admission made ready but nothing took is aborted."""

    __slots__ = (
        "body", "caps", "config", "copies", "early", "fees_held", "named", "passes_held",
        "stream", "tier", "tried", "untiered",
    )  # fmt: skip
    ANSWERS_JSON = True

    def __init__(
        self,
        gw: Gateway,
        request: Request,
        exchange: Exchange,
        caller: Caller,
        path: str,
        label: str,
        config: ModelConfig,
        caps: Capabilities,
        tier: int = 100,
        tried: tuple[Plan, ...] = (),
        named: str = "",
    ) -> None:
        super().__init__(gw, request, exchange, caller, path, label)
        # The plans the request's earlier tries were admitted by (`counted_once`).
        self.tried = tried
        # The shut-down model the request named, which this model serves: its limits apply too.
        self.named = named
        # Held at the price of the service tier asked for (`tier` percent of the standard),
        # charged at the one that served (`served_at`).
        self.config = at_tier(config, tier)
        self.tier, self.untiered = tier, config.price
        self.caps = caps
        self.early: EarlyCall | None = None
        self.body = b""
        self.stream = False
        self.copies = 1  # answers asked for (`n`)
        self.fees_held = 0  # beside the tokens (hosted tools)
        self.passes_held = 0  # input tokens of the model's passes over hosted tools' results

    async def run(self) -> Response:
        try:
            self.patch()
            if self.gw.config.admission.enabled:
                await self.hold()
            return await self.answer()
        except GatewayError as exc:
            self.failed(exc)
            raise
        finally:
            early, self.early = self.early, None  # it refers back to this attempt
            if early is not None and early.call is not None:
                early.call.cancel()  # refused or failed before the call took it

    @abstractmethod
    def patch(self) -> None:
        """Make `body` (and `stream`) what the model's upstream takes."""

    @abstractmethod
    async def hold(self) -> None:
        """Hold the worst case (`hold_worst_case`)."""

    @abstractmethod
    async def answer(self) -> Response:
        """Call, relay and settle."""

    async def hold_worst_case(
        self,
        prompt: int,
        requested: int | None,
        early: bool,
        copies: int = 1,
        fees: int = 0,
        passes: int = 0,
    ) -> None:
        """Hold the prompt and every completion token the call may use (`requested`, or the
        model's output cap, for each of `copies` answers), at the model's prices, and the most
        it may be billed beside them (`fees`); `passes`: the input tokens the model's passes
        over hosted tools' results may read, billed with the prompt (one usage: past
        `long_context_above` together, the whole call at the long-context prices); `early`:
        make the call ready meanwhile."""
        gw, model = self.gw, self.config
        cap = min(requested or model.max_output, model.max_output) * copies
        expected = requested or gw.config.admission.default_completion_tokens
        estimated = prompt + expected * copies
        assert self.model is not None
        shape = gw.plan_shapes().get(
            self.caller.team, self.caller.key, self.model,
            endpoint=self.exchange.endpoint, named=self.named,
        )  # fmt: skip
        plan = shape.plan(
            gw.new_hold_id(), estimated, worst_case_micros(model.price, prompt + passes, cap) + fees
        )
        if self.tried:
            plan = counted_once(plan, self.tried)
        if early:
            self.early = EarlyCall(self, self.body)
        self.copies, self.fees_held, self.passes_held = copies, fees, passes
        await self.admit(plan, model.price, prompt, self.early)

    def passes_tokens(self, fees: ToolFees) -> int:
        """The input the model's passes over the results of the tools OpenAI runs may read
        (held with the prompt, kept out of the token count the rate limits expect)."""
        return fees.passes_tokens(self.config.context)

    def charged_calls(self, fees: ToolFees, calls: dict[str, int]) -> int:
        """The fees of the hosted tool calls an answer made (`calls` by item type, counted in
        the metrics), never more than were held."""
        if calls:
            gw = self.gw
            gw.after_response(
                gw.metrics.count_tool_calls, self.caller.team.name, self.model or "", calls
            )
        return fees.charged(calls)

    def upstream_model(self) -> str:
        return self.config.upstream

    def reasons(self) -> bool:
        return self.config.reasoning

    def read_answer(self, status: int, content: bytes) -> None:
        super().read_answer(status, content)
        if status == 200 and self.answered is not None:
            self.served_at(self.answered.get("service_tier"))

    def served_at(self, tier: Any) -> None:
        ticket = self.ticket
        if ticket is not None and tier is not None:
            tiers = self.gw.config.admission.service_tiers
            ticket.served_price = served_price(self.untiered, self.tier, tiers, tier)
            if tiers.get(tier, 0) > self.tier:
                # Charged what upstream bills all the same, which may take the team past its
                # budget: `auto` is priced below the tier the upstream project serves it at.
                log.warning(
                    "service tier %r served a call held at %d%% of the standard price "
                    "(admission.service_tiers)", tier, self.tier,
                )  # fmt: skip

    def output_cap(self, prompt: int) -> OutputCap:
        model = self.config
        # The client's API names the field: a Responses request is served on chat completions
        # when translated, but its caller sets `max_output_tokens`.
        if self.request.scope["path"].endswith("/responses"):
            return OutputCap(
                "max_output_tokens", model.price, prompt + self.passes_held, self.copies,
                model.max_output, MIN_OUTPUT_TOKENS, self.fees_held,
            )  # fmt: skip
        return OutputCap(
            "max_completion_tokens", model.price, prompt + self.passes_held, self.copies,
            model.max_output, fees=self.fees_held,
        )  # fmt: skip

    def prepared(self) -> PreparedCall | None:
        """The first upstream try the admission made ready, if any."""
        return self.early.call if self.early is not None else None


class EarlyCall:
    """A call's first upstream try, made ready while its admission is in flight and
    written the moment an admitting reply arrives, before the request's task resumes: the
    reply's decoding, the ticket and the send path then overlap the upstream's work instead of
    preceding it. Refused, failed or replayed admissions write nothing; without the pipelined
    Redis client, or without an idle upstream connection, the call is sent the usual way after
    the admission. A request that fails between an admitting reply and its call aborts the
    written call; its hold is charged when it expires, as any hold never settled is."""

    __slots__ = ("attempt", "body", "call")

    def __init__(self, attempt: Attempt, body: bytes) -> None:
        self.attempt = attempt
        self.body = body
        self.call: PreparedCall | None = None

    def sent(self) -> bool:
        attempt = self.attempt
        assert attempt.model is not None  # only a model's deployments take early calls
        self.call = attempt.gw.dispatch.prepare(
            attempt.model, attempt.upstream_method(), attempt.path, attempt.upstream_query(),
            attempt.traced_headers(), self.body, attempt.gw.own_key(attempt.caller.team),
            attempt.caller.team.name,
        )  # fmt: skip
        return self.call is not None

    def admitted(self) -> None:
        if self.call is not None:
            self.call.fire()


def ask_served_tier(payload: dict[str, Any]) -> None:
    """Name `auto`, what naming no tier means, in a chat or Responses request that names none:
    OpenAI's answer says which tier served a call only when the call names one, and a request
    naming none is served at the project's default tier, which may be priority."""
    if payload.get("service_tier") is None:
        payload["service_tier"] = "auto"
