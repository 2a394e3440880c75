"""`o1-gateway route`: decisions as JSON lines, and `--eval` against a labeled file."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from tests.conftest import ROOT

DEV = ROOT.parent / "shared" / "routing" / "dev.jsonl"


def run(argv: list[str], stdin: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "route", *argv],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def test_one_decision_per_input_line() -> None:
    lines = [
        {"prompt": "Write a cheerful limerick about a cat who loves mornings."},
        {
            "messages": [
                {"role": "user", "content": "Write a Python function that merges two sorted lists."}
            ]
        },
        {"prompt": "Hi"},
    ]
    code, out, err = run([], "\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert code == 0, err
    decisions = [json.loads(line) for line in out.splitlines()]
    assert [d["model"] for d in decisions] == ["gpt-4o", "o1-mini", "gpt-4o"]
    for decision in decisions:
        assert set(decision) >= {"model", "score", "reasons"}
        assert decision["reasons"][0].startswith("domain: ")


def test_policy_choice_and_unknown_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"prompt": "hello"}\n'))
    assert main.main(["route", "--policy", "auto-cheap"]) == 0
    assert json.loads(out.getvalue())["model"] == "gpt-4o"
    code, _, err = run(["--policy", "nope"], "")
    assert code == 2 and "unknown routing policy 'nope'" in err


def test_bad_input_lines_are_named() -> None:
    code, _, err = run([], '{"prompt": "ok"}\nnot json\n')
    assert code == 2 and "line 2: not JSON" in err
    code, _, err = run([], '{"text": "no prompt"}\n')
    assert code == 2 and "line 1" in err


@pytest.mark.skipif(not DEV.is_file(), reason="../shared/routing/dev.jsonl is not beside the repo")
def test_eval_prints_accuracy_matrix_and_cost(tmp_path: Path) -> None:
    code, out, err = run(["--eval", str(DEV)], "")
    assert code == 0, err
    total = sum(1 for line in DEV.read_text().splitlines() if line.strip())
    assert f"prompts: {total}" in out
    for name in ("general", "stem", "hard-stem", "hard-science"):
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert "ratio" in out
    # The same labeled lines on stdin give the same report.
    code, same, _ = run(["--eval"], DEV.read_text())
    assert same == out
