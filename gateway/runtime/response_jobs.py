"""Background responses, as the gateway follows them (`runtime.follower`): held at creation
(their worst case, like any Responses call) and charged once upstream says they ended, to the
usage the finished response reports at its model's price. One that ends without usage
(cancelled before it wrote anything upstream reports) is charged its hold: upstream may have
billed all of it, and the gateway cannot see less.
"""

from __future__ import annotations

from typing import Any

from gateway.admission.pricing import cost_micros
from gateway.runtime.follower import Ended, JobKind, ModelOf, Read
from gateway.wire.usage import Usage, usage_from


class BackgroundResponses(JobKind):
    name = "response"
    path = "/responses"
    open_key = "o1gw:responses:open"
    ended_statuses = frozenset({"completed", "incomplete", "failed", "cancelled"})

    def __init__(self, poll_s: float, model_of: ModelOf) -> None:
        super().__init__(poll_s)
        self._model_of = model_of

    async def priced(self, job: dict[str, Any], record: dict[str, Any], read: Read) -> Ended:
        """A response followed with the configured name of the model that served it (`model`)."""
        used = usage_from(job.get("usage"))
        found = self._model_of(str(record.get("model")))
        if used is None or found is None:
            return Ended(Usage(), int(record["plan"]["reserve"]))
        return Ended(used, cost_micros(found[1].price, used))
