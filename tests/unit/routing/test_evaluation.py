"""Scoring routing decisions against labels."""

from __future__ import annotations

import pytest

from gateway.routing.evaluation import evaluate, render

GENERAL = {"class": "general", "preferred": "gpt-4o", "acceptable": ["gpt-4o"]}
STEM = {"class": "stem", "preferred": "o1-mini", "acceptable": ["gpt-4o", "o1-mini"]}
HARD = {"class": "hard-science", "preferred": "o1-preview", "acceptable": ["o1-preview"]}


def test_counts_acceptable_preferred_and_the_confusion_matrix() -> None:
    rows = [GENERAL, GENERAL, STEM, STEM, HARD, HARD]
    routed = ["gpt-4o", "o1-mini", "gpt-4o", "o1-mini", "o1-preview", "gpt-4o"]
    report = evaluate(rows, routed)
    assert (report.total, report.acceptable, report.preferred) == (6, 4, 3)
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.class_accuracy("general") == 0.5
    assert report.class_accuracy("stem") == 1.0
    assert report.classes["hard-science"].routed == {"o1-preview": 1, "gpt-4o": 1}
    assert (report.hard_to_general, report.hard_total) == (1, 2)
    assert (report.general_to_reasoning, report.general_total) == (1, 2)
    assert report.general_to_reasoning_share == 0.5
    assert report.models == ("gpt-4o", "o1-mini", "o1-preview")
    assert report.cost_micros is None


def test_cost_against_the_baseline_model() -> None:
    costs = [{"gpt-4o": 10, "o1-mini": 30, "o1-preview": 100}] * 2
    report = evaluate([GENERAL, HARD], ["gpt-4o", "o1-preview"], costs=costs)
    assert (report.cost_micros, report.baseline_micros) == (110, 200)
    text = render(report)
    assert "ratio 0.550" in text
    assert "hard prompts sent to the general model: 0/1 (0.0%)" in text
    assert "general prompts sent to a reasoning model: 0/1 (0.0%)" in text
    assert report.cost_ratio == 0.55
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("class"))
    # Columns: every model routed to or acceptable somewhere in the set.
    assert header.split()[-3:] == ["preferred", "gpt-4o", "o1-preview"]
    table = lines[lines.index(header) + 1 :]
    general = next(line for line in table if line.startswith("general"))
    assert general.split() == ["general", "1", "100.0%", "100.0%", "1", "0"]


def test_rows_and_decisions_must_pair_up() -> None:
    with pytest.raises(ValueError, match="one routed model per labeled row"):
        evaluate([GENERAL], [])
