"""Child processes of a benchmark, and what /proc says about them: CPU ticks, peak and current
resident memory, the processes holding a listening socket, the whole machine's busy time."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


class SetupError(RuntimeError):
    """The benchmark could not be set up (a server did not start, wrk failed to run, ...)."""


def exit_status(work: Callable[[], object]) -> int:
    """A benchmark's exit status: 0 once `work` has run, 2 when it could not be set up (said
    on stderr)."""
    try:
        work()
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(source: Path = ROOT, **extra: str) -> dict[str, str]:
    """The parent's environment minus anything that would change the gateway's config, with
    `source` (a checkout of the repository) first on the import path: it, not the project's
    editable install, is the code that runs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("O1GW", "OPENAI_")) and k != "REDIS_URL"
    }
    env["PYTHONPATH"] = str(source)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def raise_fd_limit() -> None:
    """Hundreds of client connections plus as many upstream ones: lift the open-files limit
    that the servers and the load generator (children) inherit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Child:
    """A child process started in its own session (stdout and stderr to a log file) and killed
    as a group on stop(), so the workers a server forks go with it. It runs in `cwd`, where the
    gateway finds its `config/gateway.yaml`."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], logdir: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise SetupError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def wait_http(self, url: str, headers: dict[str, str], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                req = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise SetupError(f"{self.name}: {url} not ready after {timeout_s:.0f}s ({last})")

    def wait_port(self, port: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                return
            except OSError:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise SetupError(f"{self.name} did not listen on {port}") from None
                time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def stopped_at_exit(children: list[Child]) -> Iterator[list[Child]]:
    """Stops every child registered in `children`, last started first, however the block ends:
    each is registered as it starts, so a failure half-way still stops what was started."""
    try:
        yield children
    finally:
        for child in reversed(children):
            child.stop()


# -- /proc --------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    out.append(int(child))
                    out.extend(descendants(int(child)))
    return out


def listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def serving_pids(child: Child, port: int) -> list[int]:
    """The processes (the child or its descendants) holding the listening socket on `port`."""
    inodes = {f"socket:[{i}]" for i in listening_inodes(port)}
    owners = []
    for pid in [child.pid, *descendants(child.pid)]:
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                owners.append(pid)
    return owners


def cpu_ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            # Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total


def _status_mb(pids: Sequence[int], field: str) -> float | None:
    total_kb = 0
    found = False
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total_kb += int(line.split()[1])
                    found = True
    return total_kb / 1024 if found else None


def peak_rss_mb(pids: Sequence[int]) -> float | None:
    """VmHWM (the peak resident set so far) summed over `pids`."""
    return _status_mb(pids, "VmHWM:")


def rss_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants."""
    return _status_mb([pid, *descendants(pid)], "VmRSS:") or 0.0


def host_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of the whole machine, from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def own_cpu_ms() -> float:
    """CPU of this process plus its reaped children (wrk runs are reaped children)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) * 1000


def busy_percent(pids: Sequence[int], window_s: float) -> float:
    """CPU of `pids` over the next `window_s` seconds, in % of one core."""
    before = cpu_ticks(pids)
    time.sleep(window_s)
    return 100 * (cpu_ticks(pids) - before) * TICK_MS / (window_s * 1000)


class RssSampler(threading.Thread):
    """VmRSS of a process tree every `period_s` seconds, with the count of requests completed
    at that moment (the load generator raises `count`)."""

    def __init__(self, pid: int, period_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.period_s = pid, period_s
        self.count = 0
        self.samples: list[tuple[float, int, float]] = []  # (monotonic s, count, MB)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.monotonic(), self.count, rss_mb(self.pid)))
            self.stopped.wait(self.period_s)
