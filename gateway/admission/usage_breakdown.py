"""A team's monthly usage counters, filed by model, endpoint and key, and read back as breakdowns.
Pure.

The admission script counts a month's usage in one hash, one field per kind of count and label:
`<kind>:<label>`, kind one of `KINDS`. A label names what the request was filed under,
`<model>\\t<endpoint>\\t<key id>`, and is made once per plan shape, so filing by three dimensions
costs a settle no more commands than filing by one. Fields written before labels named an
endpoint and a key (`<kind>:<model>`) read as endpoint and key `unknown`; a caller served as the
anonymous team has key `""`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SEPARATOR = "\t"
# Endpoint and key of counts filed before labels carried them.
UNKNOWN = "unknown"
# The script's kinds of count, and what the views call them.
KINDS = {
    "requests": "requests",
    "prompt": "prompt_tokens",
    "completion": "completion_tokens",
    "cached": "cached_tokens",
    "reasoning": "reasoning_tokens",
    "expired": "expired_holds",
    "cost": "cost_micros",
}
DIMENSIONS = ("model", "endpoint", "key")

Label = tuple[str, str, str]  # model, endpoint, key id


def usage_label(model: str, endpoint: str, key_id: str) -> str:
    """The label one request's usage is filed under."""
    return f"{model}{SEPARATOR}{endpoint}{SEPARATOR}{key_id}"


def label_with_model(label: str, model: str) -> str:
    """`label` with another model: the same endpoint and key."""
    _, endpoint, key_id = parse_label(label)
    return usage_label(model, endpoint, key_id)


def parse_label(label: str) -> Label:
    """(model, endpoint, key id) of a label; an old field's model alone has the others unknown.
    Split from the right: endpoints and key ids hold no separator, a model's name might."""
    parts = label.rsplit(SEPARATOR, 2)
    if len(parts) < 3:
        return label, UNKNOWN, UNKNOWN
    return parts[0], parts[1], parts[2]


def rows(fields: Mapping[str, int]) -> dict[Label, dict[str, int]]:
    """The counts of each label, from a usage hash's fields (`kind:label` -> count). A field of
    a kind the views do not know is left out."""
    out: dict[Label, dict[str, int]] = {}
    for name, value in fields.items():
        kind, _, label = name.partition(":")
        view = KINDS.get(kind)
        if view is None:
            continue
        counts = out.get(key := parse_label(label))
        if counts is None:
            counts = out[key] = dict.fromkeys(KINDS.values(), 0)
        counts[view] += value
    return out


def breakdown(fields: Mapping[str, int]) -> dict[str, Any]:
    """The month's counts by model, by endpoint and by key, and every (model, endpoint, key) row;
    each sums to the same totals."""
    by_label = rows(fields)
    view: dict[str, Any] = {
        f"by_{dimension}": _summed(((label[index], counts) for label, counts in by_label.items()))
        for index, dimension in enumerate(DIMENSIONS)
    }
    view["rows"] = [
        {**dict(zip(DIMENSIONS, label, strict=True)), **_shown(by_label[label])}
        for label in sorted(by_label)
    ]
    return view


def _summed(labelled: Iterable[tuple[str, dict[str, int]]]) -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, int]] = {}
    for name, counts in labelled:
        total = totals.setdefault(name, dict.fromkeys(KINDS.values(), 0))
        for kind, value in counts.items():
            total[kind] += value
    return {name: _shown(totals[name]) for name in sorted(totals)}


def _shown(counts: dict[str, int]) -> dict[str, Any]:
    return {**counts, "cost_usd": counts["cost_micros"] / 1_000_000}
