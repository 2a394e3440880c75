"""How well routing decisions match a labeled prompt set: accuracy, per class, a confusion
matrix, and the cost against sending everything to the most capable model. Pure.

Labeled rows carry `class`, `preferred` and `acceptable` (a list of models), as in
`../shared/routing/dev.jsonl`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Classes whose prompts must almost never go to the general model.
HARD_CLASSES = ("hard-stem", "hard-science")
#: The class whose prompts the general model serves best.
GENERAL_CLASS = "general"


@dataclass(slots=True)
class ClassResult:
    total: int = 0
    acceptable: int = 0
    preferred: int = 0
    routed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    total: int
    acceptable: int
    preferred: int
    classes: dict[str, ClassResult]
    models: tuple[str, ...]  # confusion-matrix columns
    hard_to_general: int
    hard_total: int
    general_to_reasoning: int  # general prompts sent to a model other than the general one
    general_total: int
    cost_micros: int | None  # None: no costs given
    baseline_micros: int | None

    @property
    def accuracy(self) -> float:
        return self.acceptable / self.total if self.total else 0.0

    def class_accuracy(self, name: str) -> float:
        result = self.classes[name]
        return result.acceptable / result.total if result.total else 0.0

    @property
    def hard_to_general_share(self) -> float:
        return self.hard_to_general / self.hard_total if self.hard_total else 0.0

    @property
    def general_to_reasoning_share(self) -> float:
        return self.general_to_reasoning / self.general_total if self.general_total else 0.0

    @property
    def cost_ratio(self) -> float | None:
        if self.cost_micros is None or not self.baseline_micros:
            return None
        return self.cost_micros / self.baseline_micros


def evaluate(
    rows: Sequence[Mapping[str, Any]],
    routed: Sequence[str],
    general_model: str = "gpt-4o",
    costs: Sequence[Mapping[str, int]] | None = None,
    baseline_model: str = "o1-preview",
) -> Report:
    """Score `routed[i]` against the labels of `rows[i]`.

    `costs[i]`, when given, maps each model to the estimated cost of row i on it; the report then
    compares the routed total with sending every row to `baseline_model`.
    """
    if len(rows) != len(routed):
        raise ValueError("one routed model per labeled row")
    classes: dict[str, ClassResult] = {}
    models: dict[str, None] = {}
    acceptable = preferred = hard_general = hard_total = general_reasoning = general_total = 0
    cost = baseline = 0
    for i, (row, model) in enumerate(zip(rows, routed, strict=True)):
        name = str(row.get("class", "unlabeled"))
        result = classes.setdefault(name, ClassResult())
        result.total += 1
        result.routed[model] = result.routed.get(model, 0) + 1
        models[model] = None
        ok = model in (row.get("acceptable") or ())
        result.acceptable += ok
        acceptable += ok
        hit = model == row.get("preferred")
        result.preferred += hit
        preferred += hit
        if name in HARD_CLASSES:
            hard_total += 1
            hard_general += model == general_model
        elif name == GENERAL_CLASS:
            general_total += 1
            general_reasoning += model != general_model
        if costs is not None:
            cost += costs[i][model]
            baseline += costs[i][baseline_model]
    for row in rows:
        for model in row.get("acceptable") or ():
            models.setdefault(str(model), None)
    return Report(
        total=len(rows),
        acceptable=acceptable,
        preferred=preferred,
        classes=dict(sorted(classes.items())),
        models=tuple(sorted(models)),
        hard_to_general=hard_general,
        hard_total=hard_total,
        general_to_reasoning=general_reasoning,
        general_total=general_total,
        cost_micros=cost if costs is not None else None,
        baseline_micros=baseline if costs is not None else None,
    )


def render(report: Report, baseline_model: str = "o1-preview") -> str:
    """The report as a plain-text table."""
    lines = [
        f"prompts: {report.total}   routed to an acceptable model: {_pct(report.acceptable, report.total)}"
        f"   preferred model: {_pct(report.preferred, report.total)}",
        f"hard prompts sent to the general model: {report.hard_to_general}/{report.hard_total}"
        f" ({_pct(report.hard_to_general, report.hard_total)})",
        f"general prompts sent to a reasoning model: {report.general_to_reasoning}/"
        f"{report.general_total} ({_pct(report.general_to_reasoning, report.general_total)})",
        "",
    ]
    width = max([len("class"), *(len(name) for name in report.classes)])
    cols = [f"{m:>11}" for m in report.models]
    lines.append(
        f"{'class':<{width}} {'n':>5} {'acceptable':>11} {'preferred':>10} " + " ".join(cols)
    )
    for name, result in report.classes.items():
        counts = " ".join(f"{result.routed.get(m, 0):>11}" for m in report.models)
        lines.append(
            f"{name:<{width}} {result.total:>5} {_pct(result.acceptable, result.total):>11} "
            f"{_pct(result.preferred, result.total):>10} {counts}"
        )
    if report.cost_micros is not None and report.baseline_micros:
        lines += [
            "",
            f"estimated cost: routed ${report.cost_micros / 1e6:.4f} vs all-{baseline_model} "
            f"${report.baseline_micros / 1e6:.4f} -> ratio {report.cost_ratio:.3f}",
        ]
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"
