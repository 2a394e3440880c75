"""Writing a run's results: `bench/results/<day>-<benchmark>.json` (every figure, for comparing
runs) and `.md` next to it (the report, for reading), never overwriting an earlier run."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.report import Section, as_markdown, as_text, result_stem

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_results_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where the dated results files go (default bench/results)",
    )


def write_results(
    benchmark: str, record: Mapping[str, Any], markdown: str, folder: Path = RESULTS_DIR
) -> Path:
    """Write both files; returns the JSON one's path."""
    now = datetime.datetime.now(datetime.UTC)
    folder.mkdir(parents=True, exist_ok=True)
    taken = {p.stem for p in folder.iterdir() if p.suffix in (".json", ".md")}
    stem = result_stem(now.date().isoformat(), benchmark, taken)
    document = {"benchmark": benchmark, "finished_utc": now.isoformat(timespec="seconds")}
    document.update(record)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (folder / f"{stem}.md").write_text(f"# {stem}\n\n{markdown.strip()}\n")
    return path


def print_and_write(
    benchmark: str,
    header: str,
    sections: Sequence[Section],
    record: Mapping[str, Any],
    folder: Path = RESULTS_DIR,
) -> Path:
    """Print a report's sections and write the run's files, the header (printed when the run
    started) first in the `.md`; returns the JSON file's path."""
    print("\n" + as_text(sections))
    markdown = as_markdown([Section("", header), *sections])
    path = write_results(benchmark, record, markdown, folder)
    print(f"\nresults: {path} and {path.with_suffix('.md').name}")
    return path
