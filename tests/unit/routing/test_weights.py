"""The shipped weights file (gateway/routing/weights.json): it loads, it is small, and its
provenance says what it was trained on. The labeled data is read from ../shared/routing/ only
when it is beside the repository; the tests that need it skip otherwise."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from gateway.routing import heuristic, linear
from tests.conftest import ROOT

WEIGHTS = ROOT / "gateway" / "routing" / "weights.json"


def provenance() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(WEIGHTS.read_text())["provenance"]
    return raw


def test_the_shipped_file_loads_small_with_the_routing_classes() -> None:
    assert WEIGHTS.stat().st_size < 400_000
    model = linear.load(WEIGHTS.read_bytes())
    assert model.classes == heuristic.CLASSES
    assert heuristic.MODEL.classes == heuristic.CLASSES
    assert 1000 < len(model.words) <= provenance()["hyperparameters"]["max_words"]


def test_provenance_names_the_script_the_data_and_the_hyperparameters() -> None:
    record = provenance()
    assert record["script"] == "bench/router_train.py"
    assert (ROOT / record["script"]).is_file()
    assert record["trained_at"].endswith("Z")
    paths = [d["path"] for d in record["data"]]
    assert paths == ["../shared/routing/dev.jsonl", "../shared/routing/train.jsonl"]
    for data in record["data"]:
        assert len(data["sha256"]) == 64 and data["bytes"] > 0 and data["rows"] > 0
    hyper = record["hyperparameters"]
    assert {"l2", "source_balance", "min_sources", "max_words", "scan_chars"} <= set(hyper)
    assert hyper["scan_chars"] == heuristic.DEFAULT.scan_chars
    loso = record["loso"]
    assert loso["sources"] >= 20 and loso["max_cost"] == 0.35
    assert loso["tuned"]["cost_ratio"] <= 0.35
    model = heuristic.MODEL
    assert loso["tuned"]["mini_threshold"] == model.mini_threshold
    assert loso["tuned"]["preview_threshold"] == model.preview_threshold
    assert set(loso["policies"]) == {"auto", "auto-cheap", "auto-best"}


def test_the_default_policy_takes_the_thresholds_tuned_with_the_weights() -> None:
    assert heuristic.DEFAULT.mini_threshold is None
    assert heuristic.DEFAULT.preview_threshold is None
    assert 0 < heuristic.MODEL.preview_threshold < 1 and 0 < heuristic.MODEL.mini_threshold < 1


@pytest.mark.parametrize("index", [0, 1])
def test_recorded_hashes_match_the_shared_data_when_it_is_there(index: int) -> None:
    data = provenance()["data"][index]
    path = ROOT / data["path"]
    if not path.is_file():
        pytest.skip(f"{data['path']} is not beside the repository")
    raw = path.read_bytes()
    assert (hashlib.sha256(raw).hexdigest(), len(raw)) == (data["sha256"], data["bytes"])
    assert sum(1 for line in raw.splitlines() if line.strip()) == data["rows"]
