"""`o1-gateway route`: route JSON lines from stdin offline, or evaluate against labels.

Each input line is `{"prompt": "..."}` or `{"messages": [...]}` (labeled lines may add `class`,
`preferred` and `acceptable`). Without `--eval` it writes one decision per line; with `--eval`
it prints accuracy, per-class results, a confusion matrix and the cost ratio instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import IO, Any

import orjson

from gateway.admission.pricing import estimates
from gateway.config import Config, ConfigError
from gateway.routing import evaluation, heuristic


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "route",
        help="route prompts (JSON lines on stdin) offline; --eval scores a labeled set",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML config file (default: as `serve` finds it)")
    parser.add_argument("--policy", default="auto", help="routing policy from config (auto)")
    parser.add_argument(
        "--eval",
        nargs="?",
        const="-",
        metavar="FILE",
        help="score against the labels of FILE (or of stdin when no FILE is given)",
    )


def run(args: argparse.Namespace, config: Config, stdin: IO[str], stdout: IO[str]) -> int:
    try:
        return _run(args, config, stdin, stdout)
    except (ConfigError, OSError) as exc:
        print(f"o1-gateway route: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, config: Config, stdin: IO[str], stdout: IO[str]) -> int:
    policy = config.routing.policies.get(args.policy)
    if policy is None:
        raise ConfigError(
            f"--policy: unknown routing policy {args.policy!r} "
            f"(one of {', '.join(config.routing.policies) or 'none'})"
        )
    source = stdin if args.eval in (None, "-") else open(args.eval, encoding="utf-8")  # noqa: SIM115
    with source:
        rows = list(read_rows(source))
    decisions = [heuristic.route(messages_of(row), policy) for row in rows]
    if args.eval is None:
        for decision in decisions:
            line = {
                "model": decision.model,
                "score": decision.score,
                "domain": decision.domain,
                "reasons": list(decision.reasons),
            }
            if decision.effort:
                line["effort"] = decision.effort
            stdout.write(orjson.dumps(line).decode() + "\n")
        return 0
    models = list(dict.fromkeys((policy.general_model, policy.mini_model, policy.preview_model)))
    costs = [
        {name: e["estimated_cost_micros"] for name, e in estimates(config, row, models).items()}
        for row in ({"messages": messages_of(row)} for row in rows)
    ]
    report = evaluation.evaluate(
        rows,
        [d.model for d in decisions],
        general_model=policy.general_model,
        costs=costs,
        baseline_model=policy.preview_model,
    )
    model = heuristic.MODEL
    data = ", ".join(str(d.get("path", "?")).rsplit("/", 1)[-1] for d in model.provenance["data"])
    mini, preview = heuristic.thresholds(policy)
    stdout.write(
        f"policy: {args.policy} (mini_threshold {mini:g}, preview_threshold {preview:g}); "
        f"router weights trained {model.provenance['trained_at']} on {data}\n"
    )
    stdout.write(evaluation.render(report, baseline_model=policy.preview_model) + "\n")
    return 0


def read_rows(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or not (
            isinstance(row.get("prompt"), str) or isinstance(row.get("messages"), list)
        ):
            raise ConfigError(f'line {number}: expected {{"prompt": ...}} or {{"messages": [...]}}')
        yield row


def messages_of(row: dict[str, Any]) -> list[Any]:
    messages = row.get("messages")
    if isinstance(messages, list):
        return messages
    return [{"role": "user", "content": row.get("prompt", "")}]
