"""Which headers cross the gateway, in each direction, and under what name. Pure.

Upstream gets the gateway's own credentials, never the caller's. The caller gets the upstream's
request id and timing, but not the upstream's rate-limit headers: they describe the gateway's
shared key, how much of its limits every team together has left, which no team should see of
the others. An operator may have them relayed, renamed rather than passed off as the caller's
own limits. A key the caller chose
for upstream to dedupe by goes as its team's (`team_scoped`): upstream sees one key for all teams.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

# Client headers worth forwarding: content negotiation, beta opt-ins, idempotency, SDK telemetry,
# the caller's W3C trace context (replaced by the gateway's own span when it traces).
# Authorization, OpenAI-Organization and OpenAI-Project belong to the caller's account, not ours.
FORWARD_REQUEST = frozenset(
    {
        "content-type", "accept", "openai-beta", "idempotency-key", "user-agent", "traceparent",
        "tracestate",
    }
)  # fmt: skip
FORWARD_REQUEST_PREFIXES = ("x-stainless-",)
# A client-chosen key upstream may dedupe by, replaying the first request's answer to a second:
# every team shares the gateway's upstream key, so two teams choosing the same value must not
# meet there. A header whose name has this in it goes upstream scoped to the team, if at all.
TEAM_SCOPED = "idempotency"
JSON_MEDIA = "application/json"

# Upstream headers the caller may see unchanged (raw names, as the upstream clients give them).
FORWARD_RESPONSE = frozenset(
    {
        b"content-type",
        b"content-disposition",
        b"x-request-id",
        b"openai-processing-ms",
        b"openai-version",
        b"retry-after",
        b"retry-after-ms",
        b"x-should-retry",
    }
)
UPSTREAM_RATELIMIT_PREFIX = b"x-ratelimit-"
RENAMED_RATELIMIT_PREFIX = b"x-upstream-ratelimit-"


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String() at OpenAI's millisecond precision.

    20ms, 1s, 1.5s, 6m0s, 11m32.334s, 1h36m16.107s. A positive value under 1 ms shows as 1ms
    rather than 0s, so "something is in use" stays visible.
    """
    if not seconds > 0:  # also catches NaN
        return "0s"
    ms = round(seconds * 1000) or 1
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(16)


def upstream_request_headers(
    client: Iterable[tuple[bytes, bytes]],
    api_key: str,
    organization: str = "",
    project: str = "",
    extra_prefixes: tuple[str, ...] = (),
    team: str = "",
    salt: str = "",
) -> dict[str, str]:
    """Headers for the upstream call, from the client's raw ASGI headers, made on `team`'s
    behalf (a dedup key goes only on a team's, as `team_scoped` makes it)."""
    out = {"authorization": f"Bearer {api_key}", "accept-encoding": "identity"}
    if organization:
        out["openai-organization"] = organization
    if project:
        out["openai-project"] = project
    prefixes = FORWARD_REQUEST_PREFIXES + extra_prefixes
    for raw_name, raw_value in client:
        name = raw_name.decode("latin-1").lower()
        if (name in FORWARD_REQUEST or name.startswith(prefixes)) and name not in out:
            # A header given twice goes as its first value, the one the gateway read (as
            # `Request.headers.get` reads it): a second Content-Type, say, would have upstream
            # read the body otherwise, a form's fields (or its boundary) unchecked.
            value = raw_value.decode("latin-1")
            if name == "content-type":
                value = sent_content_type(value)
            elif TEAM_SCOPED in name:
                if not team:
                    continue
                value = team_scoped(salt, team, value)
            out[name] = value
    return out


def sent_content_type(declared: str) -> str:
    """The Content-Type upstream is told: a JSON body's is plain `application/json`, since the
    gateway reads JSON as UTF-8 (and writes it so when it writes it again). A charset sent on
    would have a parser that honours one (aiohttp's, Django REST framework's) read the same
    bytes as other text: `{"model": "gpt-4o-mini", "+AG0-odel": "o1"}` is two models in UTF-7,
    the one checked and charged, and the one served. Any other type goes as declared (a form's
    boundary with it)."""
    media = declared.split(";", 1)[0].strip().lower()
    return JSON_MEDIA if media == JSON_MEDIA or media.endswith("+json") else declared


def team_scoped(salt: str, team: str, value: str) -> str:
    """A client's dedup key as its team's: a keyed hash of both, the same for the same two (a
    client's retries still share it), never a value another team's could be."""
    # Named apart from the other keyed hashes of a team's name (its `safety_identifier`).
    message = f"{TEAM_SCOPED}\x00{team}\x00{value}".encode()
    return "o1gw-" + hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()


def client_response_headers(
    upstream: Iterable[tuple[bytes, bytes]], upstream_limits: bool = False
) -> list[tuple[bytes, bytes]]:
    """Headers for the caller, raw, from the upstream response's (lower-case names); a request
    id of the gateway's own when the upstream sent none. `upstream_limits`: the upstream's
    rate-limit headers too, renamed."""
    out: list[tuple[bytes, bytes]] = []
    request_id = False
    for name, value in upstream:
        if name in FORWARD_RESPONSE:
            request_id = request_id or name == b"x-request-id"
            out.append((name, value))
        elif upstream_limits and name.startswith(UPSTREAM_RATELIMIT_PREFIX):
            out.append((RENAMED_RATELIMIT_PREFIX + name[len(UPSTREAM_RATELIMIT_PREFIX) :], value))
    if not request_id:
        out.append((b"x-request-id", new_request_id().encode()))
    return out


def encoded(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The gateway's own headers (lower-case names) as the raw pairs ASGI sends."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def unread_coding(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """A coding the request's body says it is in and the gateway does not undo, as (header,
    coding); None when there is none. The gateway reads a body as the bytes that came (httptools
    undoes `chunked` only), and sends upstream no Content-Encoding: a compressed body would be
    read as garbage, and one said compressed but sent plain read as what no reader that honours
    the header would see."""
    for name, value in headers:
        if name == b"content-encoding":
            allowed: tuple[str, ...] = ("identity", "")
        elif name == b"transfer-encoding":
            allowed = ("chunked",)
        else:
            continue
        for coding in value.decode("latin-1").lower().split(","):
            if coding.strip() not in allowed:
                return name.decode("latin-1"), coding.strip()
    return None


def client_timeout_s(headers: Iterable[tuple[bytes, bytes]]) -> float | None:
    """How long the client will wait, from the `x-stainless-timeout` the OpenAI SDKs send
    (seconds); retries must not outlast it. None when absent or unreadable."""
    for name, value in headers:
        if name == b"x-stainless-timeout":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if seconds > 0 else None
    return None
