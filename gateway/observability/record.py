"""One record per API request, filled in as the request goes (who, which models, patches,
usage, upstream time) and read once when the response has gone, for the request metrics and
the access-log line. Pure: the record observes, it never steers the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.admission.redis_side import Ticket

# Resource names that may label metrics; anything else is "other" so a caller cannot mint series.
KNOWN_ENDPOINTS = frozenset(
    {
        "assistants", "audio", "batches", "chat", "completions", "embeddings", "files",
        "fine_tuning", "images", "models", "moderations", "realtime", "responses", "route",
        "threads", "uploads", "vector_stores",
    }
)  # fmt: skip


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
    stream: bool = False
    ticket: Ticket | None = None  # admitted: what it was charged
    upstream_s: float | None = None
    first_token_at: float | None = None
    status: int = 0
    error_code: str = ""
    request_id: str = ""
    headers_at: float | None = None


def endpoint_of(path: str) -> str:
    """The resource a `/v1/...` path names (chat for /v1/chat/completions)."""
    resource = path[4:].split("/", 1)[0] if path.startswith("/v1/") else ""
    return resource if resource in KNOWN_ENDPOINTS else "other"


def access_line(ex: Exchange, finished: float) -> dict[str, Any]:
    """The access-log record: never headers, bodies, keys or query strings."""
    usage = ex.ticket.usage if ex.ticket is not None else None
    line: dict[str, Any] = {
        "request_id": ex.request_id,
        "method": ex.method,
        "path": ex.path,
        "status": ex.status,
        "team": ex.team,
        "key_id": ex.key_id,
        "model": ex.model,
        "routed_model": ex.routed_model,
        "stream": ex.stream,
        "duration_ms": round((finished - ex.started) * 1000, 3),
    }
    if ex.policy:
        line["policy"] = ex.policy
        line["route_reason"] = ex.route_reason
    if ex.patches:
        line["patches"] = list(ex.patches)
    if usage is not None:
        line["prompt_tokens"] = usage.prompt_tokens
        line["cached_tokens"] = usage.cached_tokens
        line["completion_tokens"] = usage.completion_tokens
        line["reasoning_tokens"] = usage.reasoning_tokens
        line["cost_micros"] = ex.ticket.cost if ex.ticket is not None else 0
    if ex.upstream_s is not None:
        line["upstream_ms"] = round(ex.upstream_s * 1000, 3)
    if ex.first_token_at is not None:
        line["ttft_ms"] = round((ex.first_token_at - ex.started) * 1000, 3)
    if ex.error_code:
        line["error_code"] = ex.error_code
    return line
