"""The retirement shield: which model serves a request naming one that upstream has shut down.

Pure: "today" is given (an ISO day, compared as text), never read from a clock. A model whose
`shutdown` day has come is served by its `successor`, or that one's while it too is retired;
one with no live successor is refused by the gateway rather than sent upstream to fail. A
successor that reasons, standing in for a model that does not, is asked effort `none` when it
takes it: the answer the client asked for, within the `max_tokens` it set, not one that thinks
first (and is given room, and billed, for thinking).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from gateway.config import ModelConfig

__all__ = ["Retiring", "Substitution", "refused", "retired", "retiring", "serving"]


@dataclass(frozen=True, slots=True)
class Substitution:
    old: str
    new: str  # "": no configured successor is still served
    shutdown: str
    # The reasoning effort `new` is asked so it stands in for `old` ("": its own default).
    effort: str = ""

    @property
    def header(self) -> str:
        """The `x-gateway-model-substituted` value."""
        return f"{self.old} -> {self.new}"


def _live(model: ModelConfig, today: str) -> bool:
    return not model.shutdown or model.shutdown > today


def retired(models: Mapping[str, ModelConfig], name: str, today: str) -> Substitution | None:
    """The substitution for a request naming the configured model `name`; None while it is
    served. Config loading refused successor loops, so the walk ends."""
    model = models.get(name)
    if model is None or _live(model, today):
        return None
    current = model
    while current.successor:
        successor = models[current.successor]
        if _live(successor, today):
            return Substitution(
                name, current.successor, model.shutdown, _stand_in_effort(model, successor)
            )
        current = successor
    return Substitution(name, "", model.shutdown)


def refused(models: Mapping[str, ModelConfig], name: str, today: str) -> bool:
    """Whether the configured model `name` is shut down with no successor serving it."""
    substitution = retired(models, name, today)
    return substitution is not None and not substitution.new


def serving(models: Mapping[str, ModelConfig], name: str, today: str, shield: bool) -> str:
    """The model serving requests that name the configured model `name` from its shutdown day,
    today's once that day has come (a successor may be shut down since); "" for none: no
    successor is still served, or the shield is off, which substitutes nothing and sends
    every request upstream as named."""
    model = models.get(name)
    if not shield or model is None or not model.shutdown:
        return ""
    after = retired(models, name, max(model.shutdown, today))
    return after.new if after is not None else ""


def _stand_in_effort(old: ModelConfig, new: ModelConfig) -> str:
    """`none` for a successor that reasons at an effort asked, standing in for a model that
    does not reason: its default effort may think, which the client never asked for."""
    if old.reasoning or "none" not in (new.capabilities.reasoning_effort or ()):
        return ""
    return "none"


@dataclass(frozen=True, slots=True)
class Retiring:
    model: str
    shutdown: str
    days_left: int  # 0 or less once shut down (on its day, its successor serves it)
    # Who serves it from its day, or today once it has come ("" = nobody: refused by the
    # shield, or, with the shield off, sent upstream as named, which refuses it).
    successor: str


def retiring(
    models: Mapping[str, ModelConfig], today: str, within_days: int, shield: bool
) -> list[Retiring]:
    """Configured models shutting down within `within_days` of `today` (those already shut
    down too), soonest first, each with the model serving it from its day (`serving`)."""
    day = date.fromisoformat(today)
    found = []
    for name, model in models.items():
        if not model.shutdown:
            continue
        left = (date.fromisoformat(model.shutdown) - day).days
        if left <= within_days:
            found.append(Retiring(name, model.shutdown, left, serving(models, name, today, shield)))
    return sorted(found, key=lambda r: (r.shutdown, r.model))
