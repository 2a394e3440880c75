"""Background responses, as the gateway follows them (`runtime.follower`): held at creation
(their worst case, like any Responses call) and charged once upstream says they ended, to the
usage the finished response reports at its model's price (at the service tier it says served
it, which upstream bills) and the fees of the hosted tool calls it made. One that
ends without usage (cancelled before it wrote anything upstream reports) is charged its hold:
upstream may have billed all of it, and the gateway cannot see less.
"""

from __future__ import annotations

from typing import Any

from gateway.admission.pricing import cost_micros
from gateway.admission.tool_fees import ToolFees, with_fees
from gateway.config import Price
from gateway.runtime.follower import Ended, JobKind, Read
from gateway.wire.hosted_tools import call_counts
from gateway.wire.usage import Usage, usage_from


class BackgroundResponses(JobKind):
    name = "response"
    path = "/responses"
    open_key = "o1gw:responses:open"
    ended_statuses = frozenset({"completed", "incomplete", "failed", "cancelled"})

    async def priced(self, job: dict[str, Any], record: dict[str, Any], read: Read) -> Ended:
        """A response followed with the price of the model that served it (`price`: a fine-tune
        is priced apart from its base, so the price travels, not the name)."""
        used = usage_from(job.get("usage"))
        reserve = int(record["plan"]["reserve"])
        if used is None:
            return Ended(Usage(), reserve)
        output = job.get("output")
        fees = ToolFees.from_record(record.get("fees"))
        fee = fees.charged(call_counts(output if isinstance(output, list) else ()))
        tier = job.get("service_tier")
        served = record.get("tier_prices", {}).get(tier) if isinstance(tier, str) else None
        price = Price(**(served or record["price"]))
        return Ended(used, with_fees(cost_micros(price, used), fee, reserve))
