"""Another version of this repository's code as a directory of its own, to run it next to the
working tree: a revision's `git archive` unpacked into a temporary directory, removed when the
block ends. Nothing in the repository changes (no worktree registered, nothing checked out), so
an interrupted run leaves nothing behind in it."""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.processes import ROOT, SetupError


def _git(*args: str, repo: Path = ROOT) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise SetupError(f"git {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise SetupError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve(revision: str, repo: Path = ROOT) -> str:
    """The full commit id a revision (a commit, tag, branch, HEAD~1, ...) names."""
    return _git("rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}", repo=repo)


def describe_commit(commit: str, repo: Path = ROOT) -> str:
    """The short id and the subject line, cut to a readable length."""
    line = _git("log", "-1", "--format=%h %s", commit, repo=repo)
    return line if len(line) <= 72 else line[:71] + "…"


RUNS = ("gateway", "config")  # what a gateway started from a checkout runs and reads


def describe_working_tree(repo: Path = ROOT) -> str:
    """The working tree as the commit it is on, and whether the files a gateway runs differ from
    it (what runs is the files, committed or not; a change to the benchmark does not count)."""
    head = _git("rev-parse", "--short", "HEAD", repo=repo)
    changed = _git("status", "--porcelain", "--", *RUNS, repo=repo)
    where = " or ".join(f"{name}/" for name in RUNS)
    return f"working tree at {head}" + (f" + uncommitted changes in {where}" if changed else "")


@contextlib.contextmanager
def checked_out(commit: str, repo: Path = ROOT) -> Iterator[Path]:
    """The files of `commit` in a temporary directory, for the block's duration."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", commit],
            capture_output=True,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise SetupError(f"git archive {commit}: {exc}") from exc
    if archive.returncode != 0:
        raise SetupError(f"git archive {commit}: {archive.stderr.decode(errors='replace')}")
    with tempfile.TemporaryDirectory(prefix=f"o1gw-ab-{commit[:12]}-") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            # "data": nothing outside the folder, no device files, no setuid bits.
            tar.extractall(folder, filter="data")
        yield Path(folder)
