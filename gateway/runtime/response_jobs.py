"""Background responses, as the gateway follows them (`runtime.follower`): held at creation
(their worst case, like any Responses call) and charged once upstream says they ended, to the
usage the finished response reports at its model's price. One that ends without usage
(cancelled before it wrote anything upstream reports) is charged its hold: upstream may have
billed all of it, and the gateway cannot see less.
"""

from __future__ import annotations

from typing import Any

from gateway.admission.pricing import cost_micros
from gateway.config import Price
from gateway.runtime.follower import Ended, JobKind, Read
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
        if used is None:
            return Ended(Usage(), int(record["plan"]["reserve"]))
        return Ended(used, cost_micros(Price(**record["price"]), used))
