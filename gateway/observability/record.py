"""One record per API request, filled in as the request goes (who, which models, patches,
usage, upstream time) and read once when the response has gone, for the request metrics and
the access-log line. Pure data: the record observes a request, it never steers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.wire.usage import Usage


class Charge(Protocol):
    """What an admitted request was charged (admission's ticket): None until it settles."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def cost(self) -> int: ...


@dataclass(slots=True)
class Exchange:
    started: float
    method: str = ""
    path: str = ""
    endpoint: str = "other"
    team: str = ""
    key_id: str = ""
    model: str = ""  # what the client asked for, if it is a configured model or policy
    routed_model: str = ""  # the configured model that served it
    policy: str = ""
    route_reason: str = ""
    patches: tuple[str, ...] = ()
    cache: str = ""  # hit, miss, refresh or bypass; "" when the response cache was not on
    stream: bool = False
    ticket: Charge | None = None  # admitted: what it was charged
    upstream_s: float | None = None
    first_token_at: float | None = None
    status: int = 0
    error_code: str = ""
    request_id: str = ""
    headers_at: float | None = None
