"""bench.ab's options: the baseline is required, --quick shortens the turns, scenarios are
checked; and each version's Redis database."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ab import FULL, QUICK, parse_args, redis_database
from bench.scenarios import scenario_names


def test_a_baseline_is_required_and_only_one() -> None:
    with pytest.raises(SystemExit):
        parse_args([])
    with pytest.raises(SystemExit):
        parse_args(["--baseline", "HEAD~1", "--baseline-dir", "/tmp"])
    with pytest.raises(SystemExit):
        parse_args(["--baseline-dir", "/nonexistent/o1gw-ab"])


def test_full_and_quick_settings_and_overrides() -> None:
    full = parse_args(["--baseline", "eccd4bc"])
    assert (full.rounds, full.slice, full.warmup) == tuple(FULL.values())
    assert full.scenarios == ["non-stream", "stream"]
    quick = parse_args(["--baseline", "eccd4bc", "--quick", "--rounds", "6"])
    assert (quick.rounds, quick.slice, quick.warmup) == (6, QUICK["slice"], QUICK["warmup"])
    assert parse_args(["--baseline-dir", "/tmp"]).baseline_dir == Path("/tmp")
    with pytest.raises(SystemExit):
        parse_args(["--baseline", "eccd4bc", "--rounds", "1"])
    with pytest.raises(SystemExit):
        parse_args(["--baseline", "eccd4bc", "--scenarios", "stream,nope"])


def test_scenario_names_are_checked() -> None:
    assert scenario_names(" stream, o1-fake-stream ,") == ["stream", "o1-fake-stream"]
    with pytest.raises(ValueError, match="expected some of"):
        scenario_names("")
    with pytest.raises(ValueError, match="'streaming'"):
        scenario_names("streaming")


def test_each_version_gets_a_database_of_the_same_server() -> None:
    assert redis_database("redis://127.0.0.1:6390/0", 1) == "redis://127.0.0.1:6390/1"
