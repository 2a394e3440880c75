"""bench.steps: the per-call figures from rounds of timed calls, and that the steps it times
are the paths their names say."""

from __future__ import annotations

import pytest

from bench.steps import per_call_us, steps


def test_per_call_figures_are_the_fastest_and_the_median_round() -> None:
    fastest, median = per_call_us([0.30, 0.10, 0.20, 0.50, 0.40], calls=100_000)
    assert fastest == pytest.approx(1.0)  # 0.10 s / 100,000 calls = 1 us
    assert median == pytest.approx(3.0)


def test_the_steps_time_the_paths_they_name() -> None:
    timed = steps()
    assert "validate a chat request" in timed  # the step the verdict reads
    o1 = timed["rewrite it for o1 (system role, max_tokens, sampling)"]()
    assert o1.adapted is not None and "max_tokens" in o1.adapted.patches  # type: ignore[attr-defined]
    assert timed["rewrite it for gpt-4o (nothing to patch)"]().adapted is None  # type: ignore[attr-defined]
    assert timed["decode an admitting reply"]().admitted  # type: ignore[attr-defined]
