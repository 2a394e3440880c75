"""One record per API request, filled in as the request goes (who, which models, patches,
usage, upstream time) and read once when the response has gone, for the request metrics, the
access-log line and, when tracing is on, the request's span. Pure data: the record observes a
request, it never steers it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from gateway.wire.usage import Usage

# What is given each chunk of a stream. What it returns, when not None, is given the chunks
# that follow instead: a cheaper one, once the first has read all it reads of each chunk.
StreamObserver: TypeAlias = Callable[[bytes], "StreamObserver | None"]


class Charge(Protocol):
    """What an admitted request was charged (admission's ticket): None until it settles."""

    @property
    def usage(self) -> Usage | None: ...

    @property
    def cost(self) -> int: ...


class RequestTrace(Protocol):
    """The request's spans when tracing is on (`gateway.observability.tracing`). Whoever holds
    the record tells it what happened; it never changes what happens."""

    def request(self, payload: Mapping[str, Any]) -> None:
        """The request's body, read and checked (its model, limits and, captured, messages)."""

    def reserving(self) -> object:
        """Admission begins to hold the request's worst case: its span, ended by `reserved`."""

    def reserved(
        self, span: object, error: str, admitted: bool = False, held: int = 0,
        estimated: int = 0, degraded: bool = False, refused_by: str = "",
    ) -> None:  # fmt: skip
        """Admission answered: it failed (`error`), or it admitted or refused (and which limit
        refused), holding `held` micro-dollars for `estimated` tokens."""

    def upstream(self, headers: dict[str, str], method: str, path: str, model: str) -> None:
        """An upstream call begins (unless one is under way): its span, whose `traceparent`
        goes into `headers`."""

    def upstream_done(self, status: int, error: str = "") -> None:
        """The upstream call's answer was read to its end (or failed)."""

    def answered(self, content: bytes) -> None:
        """The whole answer the client gets."""

    def read(self, answer: Mapping[str, Any]) -> None:
        """That answer, as the gateway parsed it to charge it (so it need not be read again)."""

    def streaming(self) -> StreamObserver:
        """What is given each chunk of the stream the client gets (asked for as it begins, so
        that a chunk costs one call)."""

    def settling(self, outcome: str, cost: int) -> None:
        """The charge is being settled: `settled`, `charged` or `released`, at `cost`."""

    def finish(self, exchange: Exchange, end_ns: int) -> None:
        """The response has gone: the request's span gets its attributes and ends."""


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
    substituted: str = ""  # "OLD -> NEW": a shut-down model named, its successor served
    cache: str = ""  # hit, miss, refresh or bypass; "" when the response cache was not on
    stream: bool = False
    ticket: Charge | None = None  # admitted: what it was charged
    upstream_s: float | None = None
    first_token_at: float | None = None
    status: int = 0
    error_code: str = ""
    request_id: str = ""
    headers_at: float | None = None
    trace: RequestTrace | None = None  # tracing on (and this request sampled)
    counted: str = ""  # the team whose share of the worker this request takes (`TeamShares`)
