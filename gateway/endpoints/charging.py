"""What a try is charged when it ends without an answer that says its cost, or with a whole
one: the rule every endpoint's attempt follows, so that a call upstream bills is never
charged less than the bill, and one it does not bill is charged nothing."""

from __future__ import annotations

from gateway.admission.redis_side import Ticket
from gateway.wire.errors import GatewayError
from gateway.wire.usage import Usage

# A successful answer its encoding does not decode.
UNDECODABLE = "upstream_encoding"
# Failures after upstream generated an answer, which it bills, that never said what it cost:
# cut off, no JSON, or not decodable.
BILLED_FAILURES = frozenset({"upstream_truncated", "upstream_invalid_answer", UNDECODABLE})


def billed_failure(exc: GatewayError) -> bool:
    """Whether upstream bills the call `exc` ended, though no answer said what it cost: an
    answer cut off or unreadable (`BILLED_FAILURES`), or a whole answer the gateway stopped
    waiting for after its request was written (`billed`: a timeout, a reset before any
    answer), which upstream goes on generating and bills."""
    return exc.billed or exc.code in BILLED_FAILURES


def settle_failure(ticket: Ticket, exc: GatewayError) -> None:
    """The charge of a try that ended in `exc`. A call upstream bills whose usage never came
    (`billed_failure`): the hold, never less than upstream bills. Anything else: nothing was
    generated, nothing is charged. (A stream its caller left is `Attempt.failed`'s to charge.)"""
    if billed_failure(exc):
        ticket.settle_at_reserve()
    else:
        ticket.release()


def settle_whole(ticket: Ticket, usage: Usage | None, fees: int = 0) -> None:
    """The charge of a whole answer upstream billed: the usage it reports and its `fees`; one
    that reports no usage (a priced call) is charged its hold, never less than upstream bills,
    as a cut-off answer is."""
    if usage is None and ticket.price is not None:
        ticket.settle_at_reserve()
    else:
        ticket.settle(usage, fees=fees)
