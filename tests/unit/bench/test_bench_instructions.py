"""Reading callgrind's totals, and the cycles its simulated misses are estimated to cost."""

from __future__ import annotations

import pytest

from bench.instructions import PENALTIES, callgrind_totals, estimated_cycles
from bench.tracing import counted_lines

SIMULATED = b"""# callgrind format
version: 1
creator: callgrind-3.19.0
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
fl=(1) a.c
fn=(1) main
16 5
summary: 4000 900 500 40 30 20 4 3 2 300 25 60 6
totals: 4000 900 500 40 30 20 4 3 2 300 25 60 6
"""


def test_totals_by_event_with_and_without_simulation() -> None:
    counted = callgrind_totals(SIMULATED)
    assert counted is not None
    assert counted["Ir"] == 4000 and counted["ILmr"] == 4 and counted["Bim"] == 6
    plain = callgrind_totals(b"events: Ir\nsummary: 123456\ntotals: 123456\n")
    assert plain == {"Ir": 123456}
    assert callgrind_totals(b"events: Ir\n") is None  # cut off before its totals
    assert callgrind_totals(b"events: Ir Dr\nsummary: 1\n") is None  # not one value each


def test_estimated_cycles_price_each_miss() -> None:
    counted = callgrind_totals(SIMULATED)
    assert counted is not None
    events = {name: float(value) for name, value in counted.items()}
    l1, last, branches = 40 + 30 + 20, 4 + 3 + 2, 25 + 6
    expected = (
        4000 + l1 * PENALTIES["D1mr"] + last * PENALTIES["DLmr"] + branches * PENALTIES["Bcm"]
    )
    assert estimated_cycles(events) == pytest.approx(expected)
    assert estimated_cycles({"Ir": 5000.0}) == 5000.0  # not simulated: instructions alone


def test_the_verdict_reads_estimated_cycles_when_simulated() -> None:
    """Under 5% more instructions but far more misses of the last level: simulated, the
    verdict is the cycles', which the misses put over the target."""
    off = {"Ir": 1_000_000.0, "I1mr": 0.0, "D1mr": 0.0, "D1mw": 0.0, "ILmr": 1000.0,
           "DLmr": 1000.0, "DLmw": 0.0, "Bcm": 0.0, "Bim": 0.0}  # fmt: skip
    on = {**off, "Ir": 1_030_000.0, "ILmr": 1700.0, "DLmr": 1900.0}
    lines, ok = counted_lines("non-stream", off, on, cache_sim=False)
    assert ok and lines == [
        "non-stream: instructions/request off 1,000,000, on 1,030,000: +3.0% (+30,000) -> OK"
    ]
    lines, ok = counted_lines("non-stream", off, on, cache_sim=True)
    assert not ok and len(lines) == 3
    assert lines[1] == "  L2 misses/request off 2,000, on 3,600: +80.0% (+1,600)"
    assert lines[2].startswith("  estimated cycles/request off 1,100,000, on 1,210,000: +10.0%")
    assert lines[2].endswith("-> OVER")
