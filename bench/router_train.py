"""Train the auto-router's weights from labeled prompts, and measure the recipe on sources it
never saw (leave one source out).

Run from the repository root (needs numpy: `.venv/bin/pip install numpy`):

    python -m bench.router_train              # leave-one-source-out report, then train (~30 s)
    python -m bench.router_train --loso       # the report only, nothing written
    python -m bench.router_train --check      # retrain; fail unless it matches the shipped file
    python -m bench.router_train --loso --l2 2 --min-sources 3   # another recipe, measured

The recipe's hyperparameters (`bench.router_fit.Hyper`) default to those the shipped weights were
trained with; `--l2`, `--min-sources`, `--max-words` and `--source-balance` change them, so that
they are chosen by leaving sources out rather than by watching one source.

Reads `../shared/routing/dev.jsonl` and `train.jsonl` next to the repository (`--data`); they are
licensed for tuning and evaluating the router only, so they are read here at run time and never
copied. Writes `gateway/routing/weights.json` (`--out`): the weights, the routing thresholds
tuned for them, and their provenance (each data file's SHA-256, size and rows, the
hyperparameters, this script, the time of training and the leave-one-source-out summary). The
same data gives the same file, but for the time and the versions.

The leave-one-source-out report: for each source, the recipe of `bench.router_fit` fitted on
every other source scores it. On these out-of-source probabilities the thresholds are tuned
(`bench.router_fit.tune`: the most prompts routed acceptably at no more than 0.35 of the cost of
sending everything to o1-preview), and the report gives, per source and per class, the share
routed to an acceptable model, the confusion matrix, hard prompts sent to the general model,
general prompts sent to a reasoning model and the cost ratio; then the same with thresholds
tuned on the other sources only (the estimate for a source nothing was tuned on), and each
policy of config/gateway.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    # numpy picks its exp, log and sums by the CPU it runs on, and their last bits differ
    # (AVX-512's own exp and log above all): pinned to the baseline x86-64 code, the same data
    # trains the same file on every x86-64 host, not only on the one that trained it. numpy
    # reads this when it is imported.
    os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "X86_V3 X86_V4 AVX512_ICL AVX512_SPR")
    import numpy as np
except ImportError:  # pragma: no cover - told to the user below
    np = None  # type: ignore[assignment]

from bench.processes import ROOT
from bench.router_cost import TIERS, estimated_cost_micros
from gateway.config import RoutingPolicy, load_config
from gateway.routing import evaluation, linear
from gateway.routing.features import extract
from gateway.routing.signals import NAMES
from gateway.routing.vocabulary import UNWEIGHED

SHARED = ROOT.parent / "shared" / "routing"
DATA = (SHARED / "dev.jsonl", SHARED / "train.jsonl")
HOLDOUT = ROOT / "tests" / "data" / "router_holdout.jsonl"
OUT = ROOT / "gateway" / "routing" / "weights.json"
CONFIG = ROOT / "config" / "gateway.yaml"
CLASSES = ("general", "stem", "hard-stem", "hard-science")
GENERAL, HARDEST = CLASSES.index("general"), CLASSES.index("hard-science")
HARD = [CLASSES.index(name) for name in evaluation.HARD_CLASSES]
SCALE = 1000  # weights are stored as integers in thousandths
MAX_COST = 0.35  # of sending every prompt to o1-preview
SCRIPT = "bench/router_train.py"


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def data_record(path: Path, rows: int) -> dict[str, Any]:
    raw = path.read_bytes()
    return {
        "path": os.path.relpath(path.resolve(), ROOT),  # as the repository sees it
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
        "rows": rows,
    }


def model_words(words: Any) -> list[str]:
    """The words of a text the model may weigh."""
    return sorted(w.decode() for w in words if w not in UNWEIGHED)


def examples_of(rows: Sequence[dict[str, Any]], scan_chars: int) -> list[Any]:
    from bench.router_fit import Example

    out = []
    for row in rows:
        features = extract(row["prompt"], scan_chars)
        out.append(
            Example(
                words=tuple(model_words(features.words)),
                norm=features.norm,
                signals=features.signals.values,
                label=CLASSES.index(row["class"]),
                source=str(row.get("source", "")),
            )
        )
    return out


def tier_tables(rows: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
    """(acceptable, costs): rows x tiers."""
    acceptable = np.array([[model in row["acceptable"] for model in TIERS] for row in rows])
    costs = np.array(
        [[estimated_cost_micros(model, row["prompt"]) for model in TIERS] for row in rows],
        dtype=np.float64,
    )
    return acceptable, costs


# --------------------------------------------------------------------------- the report


def report_of(
    rows: Sequence[dict[str, Any]], tiers: Sequence[int], models: Sequence[str] = TIERS
) -> evaluation.Report:
    """The evaluation of routing row i to `models[tiers[i]]` (general, reasoning, hardest)."""
    costs = [
        {model: estimated_cost_micros(model, row["prompt"]) for model in TIERS} for row in rows
    ]
    return evaluation.evaluate(
        rows,
        [models[t] for t in tiers],
        general_model=models[0],
        costs=costs,
        baseline_model=TIERS[2],
    )


def per_source_lines(rows: Sequence[dict[str, Any]], tiers: Sequence[int]) -> list[str]:
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_source.setdefault(str(row.get("source", "")), []).append(i)
    width = max(len("source"), *map(len, by_source))
    lines = [f"{'source':<{width}} {'n':>5} {'acceptable':>11}  classes"]
    for source in sorted(by_source):
        members = by_source[source]
        ok = sum(TIERS[tiers[i]] in rows[i]["acceptable"] for i in members)
        classes: dict[str, int] = {}
        for i in members:
            classes[rows[i]["class"]] = classes.get(rows[i]["class"], 0) + 1
        shown = ", ".join(f"{name} {n}" for name, n in sorted(classes.items()))
        lines.append(
            f"{source:<{width}} {len(members):>5} {100 * ok / len(members):>10.1f}%  {shown}"
        )
    return lines


def summary(report: evaluation.Report, **thresholds: float) -> dict[str, Any]:
    return {
        **thresholds,
        "acceptable": round(report.accuracy, 4),
        "classes": {name: round(report.class_accuracy(name), 4) for name in report.classes},
        "hard_to_general": round(report.hard_to_general_share, 4),
        "general_to_reasoning": round(report.general_to_reasoning_share, 4),
        "cost_ratio": round(report.cost_ratio or 0.0, 4),
    }


def routed_report(
    rows: Sequence[dict[str, Any]], probs: Any, policy: RoutingPolicy, tuned: Any
) -> evaluation.Report:
    """What `policy` routes, from the class probabilities; unset thresholds are `tuned`'s."""
    from bench.router_fit import choose

    mini = tuned.mini_threshold if policy.mini_threshold is None else policy.mini_threshold
    preview = (
        tuned.preview_threshold if policy.preview_threshold is None else policy.preview_threshold
    )
    return report_of(
        rows,
        list(choose(probs, GENERAL, HARDEST, mini, preview)),
        (policy.general_model, policy.mini_model, policy.preview_model),
    )


def loso_report(
    rows: list[dict[str, Any]], examples: list[Any], hyper: Any
) -> tuple[dict[str, Any], Any]:
    """Print the leave-one-source-out report; return its summary and the tuned thresholds."""
    from bench.router_fit import choose, loso, tune

    probs, sources = loso(examples, len(CLASSES), hyper)
    acceptable, costs = tier_tables(rows)
    labels = np.array([CLASSES.index(row["class"]) for row in rows])
    best = tune(probs, labels, acceptable, costs, HARD, MAX_COST)
    tiers = list(choose(probs, GENERAL, HARDEST, best.mini_threshold, best.preview_threshold))
    report = report_of(rows, tiers)
    print(
        f"leave one source out, {len(sources)} sources, {len(rows)} prompts; the thresholds "
        f"tuned for cost <= {MAX_COST} (mini {best.mini_threshold:g}, preview "
        f"{best.preview_threshold:g}), which the weights file carries:\n"
    )
    print("\n".join(per_source_lines(rows, tiers)) + "\n")
    print(evaluation.render(report, baseline_model=TIERS[2]) + "\n")
    out: dict[str, Any] = {
        "sources": len(sources),
        "prompts": len(rows),
        "max_cost": MAX_COST,
        "tuned": summary(
            report, mini_threshold=best.mini_threshold, preview_threshold=best.preview_threshold
        ),
    }

    # The thresholds above saw every source; here each source gets thresholds tuned on the
    # other sources' probabilities only.
    nested = np.zeros(len(rows), dtype=np.int64)
    source_of = np.array([str(row.get("source", "")) for row in rows])
    for source in sources:
        held, rest = source_of == source, source_of != source
        fold = tune(probs[rest], labels[rest], acceptable[rest], costs[rest], HARD, MAX_COST)
        nested[held] = choose(
            probs[held], GENERAL, HARDEST, fold.mini_threshold, fold.preview_threshold
        )
    nested_report = report_of(rows, list(nested))
    print("with thresholds tuned without the source they are applied to:")
    print(evaluation.render(nested_report, baseline_model=TIERS[2]) + "\n")
    out["nested_thresholds"] = summary(nested_report)

    config = load_config(CONFIG.read_text(), {}, str(CONFIG))
    out["policies"] = {}
    print(f"the policies of {CONFIG.relative_to(ROOT)}:")
    for name, policy in config.routing.policies.items():
        policy_report = routed_report(rows, probs, policy, best)
        out["policies"][name] = summary(policy_report)
        print(
            f"  {name:<10} {policy_report.accuracy:6.1%} acceptable, classes "
            + ", ".join(f"{c} {policy_report.class_accuracy(c):.1%}" for c in policy_report.classes)
            + f"; hard -> {policy.general_model} {policy_report.hard_to_general_share:.1%}, "
            f"general -> reasoning {policy_report.general_to_reasoning_share:.1%}, "
            f"cost {policy_report.cost_ratio:.3f}"
        )
    print()
    return out, best


# --------------------------------------------------------------------------- the weights file


def weights_json(fitted: Any, tuned: Any, provenance: dict[str, Any]) -> str:
    """The weights file: weights centred across classes (softmax ignores a shared shift, and a
    positive weight then reads as evidence for the class), in integer thousandths, one word a
    line, words in sorted order."""

    def ints(values: Any) -> list[int]:
        centred = values - values.mean()
        return [int(v) for v in np.rint(centred * SCALE)]

    head = {
        "format": linear.FORMAT,
        "classes": list(CLASSES),
        "thresholds": {"mini": tuned.mini_threshold, "preview": tuned.preview_threshold},
        "scale": SCALE,
        "provenance": provenance,
        "bias": ints(fitted.bias),
        "signals": {name: ints(fitted.signal_weights[k]) for k, name in enumerate(NAMES)},
    }
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]  # reopen the object
    words = [
        f"  {json.dumps(word, ensure_ascii=False)}: {json.dumps(ints(fitted.word_weights[j]))}"
        for j, word in enumerate(fitted.words)
        if any(ints(fitted.word_weights[j]))
    ]
    return text + ',\n "words": {\n' + ",\n".join(words) + "\n }\n}\n"


def trained_part(text: str) -> dict[str, Any]:
    """A weights file without the time of its training and the versions it ran on."""
    raw = json.loads(text)
    for key in ("trained_at", "environment"):
        raw["provenance"].pop(key, None)
    return raw


#: The recipe's hyperparameters a run may change: (flag, type, meaning).
HYPER_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("--l2", float, "the L2 penalty"),
    ("--min-sources", int, "the sources a word must occur in to be weighed"),
    ("--max-words", int, "the words kept after the first fit"),
    ("--source-balance", float, "each row weighs 1 / its source's rows ** this"),
)


def hyper_of(args: argparse.Namespace, default: Any) -> Any:
    """`default` (a `bench.router_fit.Hyper`) with the values the command line gives."""
    given = {
        flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
        for flag, _, _ in HYPER_FLAGS
    }
    return dataclasses.replace(default, **{k: v for k, v in given.items() if v is not None})


def cpu_dispatch() -> list[str]:
    """The CPU-specific code numpy runs here (none when pinned to the baseline, as above)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another numpy's layout: not said
        return []
    return [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.router_train",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--data", type=Path, nargs="+", default=list(DATA), help="labeled JSON lines"
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help=f"weights file ({OUT.relative_to(ROOT)})"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--loso", action="store_true", help="the report only; write nothing")
    mode.add_argument(
        "--check", action="store_true", help="train and compare with --out; write nothing"
    )
    recipe = parser.add_argument_group("the recipe (default: the shipped weights')")
    for flag, kind, meaning in HYPER_FLAGS:
        recipe.add_argument(flag, type=kind, help=meaning)
    args = parser.parse_args(argv)
    if np is None:
        print("bench.router_train needs numpy: .venv/bin/pip install numpy", file=sys.stderr)
        return 2
    from bench.router_fit import Hyper, predict, train

    dispatched = cpu_dispatch()
    if dispatched:
        print(
            f"numpy was imported before this module pinned it and runs {dispatched}: the"
            " weights may differ in their last digits from another host's",
            file=sys.stderr,
        )

    missing = [str(p) for p in args.data if not p.is_file()]
    if missing:
        print(f"no labeled prompts at {', '.join(missing)} (--data FILE ...)", file=sys.stderr)
        return 2
    # The o1-era models the labels name (an unloaded policy leaves them to the line-up).
    general, mini, preview = TIERS
    policy = RoutingPolicy(general_model=general, mini_model=mini, preview_model=preview)
    hyper = hyper_of(args, Hyper())
    tables = [(path, read_rows(path)) for path in args.data]
    rows = [row for _, table in tables for row in table]
    examples = examples_of(rows, policy.scan_chars)

    loso, tuned = loso_report(rows, examples, hyper)
    if args.loso:
        return 0
    fitted = train(examples, list(range(len(examples))), len(CLASSES), hyper)
    provenance = {
        "script": SCRIPT,
        "command": "python -m bench.router_train",
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": [data_record(path, len(table)) for path, table in tables],
        "hyperparameters": {
            **dataclasses.asdict(hyper),
            "scan_chars": policy.scan_chars,
            "weight_scale": SCALE,
            "max_cost": MAX_COST,
        },
        "words": len(fitted.words),
        "loso": loso,
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpu_dispatch": dispatched,
        },
    }
    text = weights_json(fitted, tuned, provenance)
    if HOLDOUT.is_file():
        held = read_rows(HOLDOUT)
        probs = predict(fitted, examples_of(held, policy.scan_chars), list(range(len(held))))
        print(f"{HOLDOUT.relative_to(ROOT)} (the new weights; held out, not used above):")
        report = routed_report(held, probs, policy, tuned)
        print(evaluation.render(report, baseline_model=TIERS[2]) + "\n")
    if args.check:
        if not args.out.is_file() or trained_part(args.out.read_text()) != trained_part(text):
            print(f"{args.out}: differs from a fresh training", file=sys.stderr)
            return 1
        print(f"{args.out}: the same as a fresh training")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode()) >> 10} KB, {len(fitted.words)} words)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
