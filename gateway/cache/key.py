"""The cache key of a request: the SHA-256 of its canonical form. Pure.

Two requests share a key when they would get the same answer at the same price: the same API,
the same configured model after routing (or a shut-down model's successor standing in for it:
the name its price, limits and metrics are under) and the upstream model it is sent as (a
team's fine-tune is served under its base's name), the same scope (the team, or every team
when the cache is shared) and the same body, in canonical JSON, but for the fields that change
how the answer is delivered or who is billed for it, never what it says (unless upstream would
refuse them: then the request's own miss is refused, never a hit). Only the body's own
fields are sorted: inside a value, the order of an object's members can change the answer (a
JSON schema's properties are written in the order it lists them), so it is kept as sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# Fields that leave the answer as it is (how it is delivered, who asked, where upstream caches
# the prompt), each with the type upstream takes (null: not sent; the gateway sends its own
# `safety_identifier`, whatever is given). `store` and `background` are here because a request
# that sets them is never cached. A field upstream would refuse (of another type, or not taken
# with the rest of the request: `_refused`) stays in the key, so that its request is never
# served an answer kept for one without it: its miss is refused, never kept.
IGNORED: dict[str, type] = {
    "model": str, "stream": bool, "stream_options": dict, "user": str,
    "safety_identifier": object, "prompt_cache_key": str, "store": bool, "background": bool,
}  # fmt: skip
SHARED = "*"
# "Invalid 'prompt_cache_key': string too long. Expected a string with maximum length 64".
PROMPT_CACHE_KEY_CHARS = 64


def scope(team: str, shared: bool, strict: bool) -> str:
    """Whose answers a request may be served: its team's, or every team's; a strict team's
    requests are not patched, so their answers are kept apart from patched ones."""
    return (SHARED if shared else "team:" + team) + (":strict" if strict else "")


def cache_key(
    api: str,
    model: str,
    upstream: str,
    where: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    *,
    as_sent: bool = False,
) -> str:
    """The key of `payload` on `api` ("chat" or "responses"), served by the configured `model`
    as the `upstream` one, in scope `where`; `headers`: the forwarded request headers that
    steer upstream (a query string does not: upstream is sent none with a POST); `as_sent`:
    the request goes upstream unpatched (a strict team's, or with compatibility off), where a
    model that cannot stream refuses `stream: true` (a patched one fakes the stream)."""
    body = [
        [name, payload[name]] for name in sorted(payload)
        if name not in IGNORED or _refused(api, name, payload, as_sent)
    ]  # fmt: skip
    # Two configured names of one upstream model may have their own prices and allow-lists: an
    # answer kept for one is never a hit for the other, charged a share of the other's cost.
    parts: list[Any] = [api, model, upstream, where, body, sorted((headers or {}).items())]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


def _refused(api: str, name: str, payload: Mapping[str, Any], as_sent: bool) -> bool:
    """Whether upstream may refuse the request for `payload[name]`, a field of `IGNORED`."""
    value = payload[name]
    if value is None:
        return False
    if not isinstance(value, IGNORED[name]):
        return True
    if name == "background":
        return api == "chat"  # the Responses API's: unknown to chat completions
    if name == "prompt_cache_key":
        return len(str(value)) > PROMPT_CACHE_KEY_CHARS  # a string, as checked above
    if name == "stream_options":
        # "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        return payload.get("stream") is not True
    return name == "stream" and as_sent and value is True
