"""Gateway benchmark (issue 8): the full pipeline against the simulated upstream, same run.

Run from the repository root (not a pytest test, never collected):

    .venv/bin/python tests/benchmarks/bench_proxy.py [--quick] [--litellm] [--profile S]

It starts a real redis-server, `python -m gateway simulate` (the upstream) and the gateway with
its full pipeline (`python -m gateway serve`: auth with a gateway key from a teams file,
admission on that Redis, routing, compatibility patches, metrics and the JSON access log, as
configured by default) with 1 and with 2 workers. For each scenario (non-streaming, streaming,
fake-streamed o1) and concurrency (1, 64, 512) it drives the simulator directly and each
gateway back to back with wrk (`chat.lua`; a bounded aiohttp load generator when wrk is
missing) and prints one table: req/s, latency added over the direct upstream in the same run,
server CPU per request, peak RSS. `--litellm` also measures a LiteLLM proxy (installed by this
script in its own virtual environment) on the same upstream and prints ratios.

Exit status: 0 measured (PASS or MISS), 1 the run had errors or non-2xx answers, 2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "chat.lua"
HOST = "127.0.0.1"
SIM_KEY = "sk-simulated-upstream"
# The gateway key of team "bench" (teams file written per run, by digest). Not a secret: it
# only opens the benchmark's own gateway on loopback.
GATEWAY_KEY = "sk-gw-bench-0123456789abcdefghijklmnopqrstuv"
LITELLM_KEY = "sk-litellm-bench"
LITELLM_VENV = Path(tempfile.gettempdir()) / "o1gw-litellm-venv"
# 1.107.0 was a compromised release (pulled from PyPI): never install it.
LITELLM_SPEC = "litellm[proxy]>=1.50,!=1.107.0"

SYSTEM = {"role": "system", "content": "Be brief."}
POEM = {"role": "user", "content": "Write a two-line poem about the sea."}
MATH = "What is 17*23?"
HUGE = 100_000_000


def _body(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    gateway: str  # body sent to the gateway (full pipeline)
    direct: str  # what the gateway sends upstream, sent straight to the simulator
    litellm: str | None  # body for LiteLLM (None: not compared)
    stream: bool  # the gateway's answer is an SSE stream


SCENARIOS = {
    s.name: s
    for s in (
        # model "auto": the router picks gpt-4o (gpt-4o-2024-08-06 upstream).
        Scenario(
            "non-stream",
            _body(model="auto", messages=[SYSTEM, POEM]),
            _body(model="gpt-4o-2024-08-06", messages=[SYSTEM, POEM]),
            _body(model="gpt-4o", messages=[SYSTEM, POEM]),
            stream=False,
        ),
        Scenario(
            "stream",
            _body(model="auto", messages=[SYSTEM, POEM], stream=True),
            _body(model="gpt-4o-2024-08-06", messages=[SYSTEM, POEM], stream=True),
            _body(model="gpt-4o", messages=[SYSTEM, POEM], stream=True),
            stream=True,
        ),
        # o1-mini takes neither system messages nor stream: the gateway merges the system
        # message into the user's and fakes the stream from one non-streamed upstream call,
        # which is what the direct baseline sends.
        Scenario(
            "o1-fake-stream",
            _body(
                model="o1-mini",
                messages=[SYSTEM, {"role": "user", "content": MATH}],
                stream=True,
            ),
            _body(
                model="o1-mini-2024-09-12",
                messages=[{"role": "user", "content": f"Be brief.\n\n{MATH}"}],
            ),
            None,
            stream=True,
        ),
    )
}
CONCURRENCIES = (1, 64, 512)
WORKERS = (1, 2)
# Targets of issue 8 (full pipeline, one worker).
TARGET_ADDED_P50_MS = 0.6  # at concurrency 1
TARGET_ADDED_P99_MS = 3.0  # at concurrency 1
TARGET_RPS_C64 = 2500.0  # non-streaming, concurrency 64
TARGET_CPU_MS = 0.35  # CPU per proxied request (non-streaming, concurrency 64)
TARGET_RSS_MB = 150.0  # peak RSS with 512 concurrent streams
TARGET_LITELLM_RPS_RATIO = 20.0  # our req/s / LiteLLM's (concurrency 64)
TARGET_LITELLM_ADDED_RATIO = 0.1  # our added p50 / LiteLLM's (concurrency 1)
HOT = "gw-1w"  # the target the verdict is about
FRESH = "gw-1w-fresh"  # a new one-worker gateway for the 512-stream RSS check
# At concurrency 1 every target is measured in this many slices, taking turns (see main).
INTERLEAVE_ROUNDS = 4
DRAIN_S = 15.0  # how long a target may take to finish the requests wrk left in flight
CLK_TCK = os.sysconf("SC_CLK_TCK")
TICK_MS = 1000.0 / CLK_TCK


class SetupError(RuntimeError):
    """The benchmark could not be set up (a server did not start, wrk failed to run, ...)."""


# -- results ------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


@dataclasses.dataclass(slots=True)
class Cell:
    scenario: str
    concurrency: int
    target: str  # "direct", "gw-1w", "gw-2w", "litellm-1w", ...
    kind: str  # "direct", "gateway" or "litellm"
    load: LoadResult
    cpu_ms_per_req: float | None
    cpu_percent: float | None
    upstream_cpu_percent: float | None
    redis_cpu_percent: float | None
    peak_rss_mb: float | None
    # Whole machine during the cell, in % of one core (2 cores = 200): busy, the load
    # generator's share, what other processes used (busy minus ours) and hypervisor steal.
    host_busy_percent: float = 0.0
    loadgen_percent: float = 0.0
    other_percent: float = 0.0
    steal_percent: float = 0.0
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    # Concurrency 1: each round's p50 minus the direct upstream's in the same round, to show
    # how much of the figure is the host's drift between slices.
    round_added_p50_ms: tuple[float, ...] = ()


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment minus anything that would change the gateway's config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("O1GW", "OPENAI_")) and k != "REDIS_URL"
    }
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Server:
    """A child process started in its own session and killed (group) on stop()."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pids: list[int] = [self.proc.pid]

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_http(self, url: str, headers: dict[str, str], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
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


def serving_pids(server: Server, port: int) -> list[int]:
    """The processes (started pid or its descendants) holding the listening socket on `port`."""
    inodes = {f"socket:[{i}]" for i in listening_inodes(port)}
    owners = []
    for pid in [server.proc.pid, *descendants(server.proc.pid)]:
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


def peak_rss_mb(pids: Sequence[int]) -> float | None:
    total_kb = 0
    found = False
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
                    found = True
    return total_kb / 1024 if found else None


# -- load generation ----------------------------------------------------------------------------


def ensure_wrk(allow_install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print("wrk is missing and cannot be installed here: using the Python load generator")
        return None
    print("wrk is missing: apt-get install wrk ...")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        try:
            subprocess.run(argv, env=apt_env, check=True, timeout=300, capture_output=True)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"apt-get failed ({exc}): using the Python load generator")
            return None
    return shutil.which("wrk")


_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_s(number: str, unit: str) -> float:
    return float(number) * _UNITS_S[unit]


def parse_wrk(text: str) -> LoadResult:
    """Parse `wrk --latency` output (latency units us/ms/s/m/h)."""
    pct: dict[str, float] = {}
    for m in re.finditer(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M):
        pct[m.group(1)] = _duration_s(m.group(2), m.group(3)) * 1000
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not (done and rps and "50" in pct and "99" in pct):
        raise SetupError(f"cannot parse wrk output:\n{text}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = {}
    if sock:
        socket_errors = {
            name: int(sock.group(i + 1))
            for i, name in enumerate(("connect", "read", "write", "timeout"))
        }
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    requests = int(done.group(1))
    return LoadResult(
        requests=requests,
        seconds=_duration_s(done.group(2), done.group(3)),
        rps=float(rps.group(1)),
        # No request completed within the run: wrk's percentiles are then meaningless zeros.
        p50_ms=pct["50"] if requests else math.nan,
        p99_ms=pct["99"] if requests else math.nan,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        raw=text,
    )


def run_wrk(wrk: str, url: str, body: str, auth: str, connections: int, seconds: int) -> LoadResult:
    argv = [
        wrk,
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": body, "BENCH_AUTH": auth}
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"wrk did not finish: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise SetupError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


async def _py_load(
    url: str, body: str, auth: str, connections: int, seconds: float, max_requests: int
) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    non_2xx = 0
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    deadline = time.perf_counter() + seconds
    data = body.encode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal non_2xx
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=data, headers=headers) as resp:
                        await resp.read()
                        if not 200 <= resp.status < 400:
                            non_2xx += 1
                except TimeoutError:
                    errors["timeout"] += 1
                    continue
                except aiohttp.ClientConnectorError:
                    errors["connect"] += 1
                    continue
                except (aiohttp.ClientError, OSError):
                    errors["read"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started

    if not latencies:
        raise SetupError(f"python load generator: no request to {url} completed")
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        non_2xx=non_2xx,
        socket_errors=errors,
    )


def run_python_load(url: str, body: str, auth: str, connections: int, seconds: int) -> LoadResult:
    import uvloop

    load = _py_load(url, body, auth, connections, float(seconds), max_requests=500_000)
    return uvloop.run(load)


def run_load(
    wrk: str | None, url: str, body: str, auth: str, connections: int, seconds: int
) -> LoadResult:
    if wrk:
        return run_wrk(wrk, url, body, auth, connections, seconds)
    return run_python_load(url, body, auth, connections, seconds)


# -- targets ------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Target:
    name: str
    kind: str  # "direct", "gateway" or "litellm"
    base: str  # ".../v1"
    server: Server
    port: int
    auth: str
    pids: list[int]
    processes: int = 1  # processes expected to hold the listening socket
    requests: int = 0  # sent so far, warm-ups included (to compare with access-log lines)

    def body(self, scenario: Scenario) -> str | None:
        if self.kind == "direct":
            return scenario.direct
        if self.kind == "litellm":
            return scenario.litellm
        return scenario.gateway


def check_target(target: Target) -> None:
    """One request per scenario, checked properly (wrk only counts status codes)."""
    for scenario in SCENARIOS.values():
        body = target.body(scenario)
        if body is None:
            continue
        name = f"{target.name} {scenario.name}"
        req = urllib.request.Request(
            target.base + "/chat/completions",
            data=body.encode(),
            headers={"Content-Type": "application/json", "Authorization": target.auth},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            raise SetupError(f"{name}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        target.requests += 1
        if status != 200:
            raise SetupError(f"{name}: HTTP {status}")
        streamed = json.loads(body).get("stream", False)
        if streamed:
            events = [ln[6:] for ln in raw.decode().split("\n") if ln.startswith("data: ")]
            if len(events) < 2 or events[-1] != "[DONE]":
                raise SetupError(f"{name}: does not end with data: [DONE]: {raw[-200:]!r}")
            text = "".join(
                (choice.get("delta") or {}).get("content") or ""
                for event in events[:-1]
                for choice in json.loads(event).get("choices", [])
            )
        else:
            answer = json.loads(raw)
            if answer.get("object") != "chat.completion" or not answer.get("choices"):
                raise SetupError(f"{name}: not a chat.completion: {raw[:200]!r}")
            text = answer["choices"][0]["message"]["content"] or ""
        if not text:
            raise SetupError(f"{name}: empty answer: {raw[:300]!r}")
        if target.kind != "gateway":
            continue
        # The full pipeline ran: routing picked a model, patches were applied where needed.
        gw = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-gateway-")}
        if "x-gateway-upstream-ms" not in gw and not streamed:
            raise SetupError(f"{name}: no x-gateway-upstream-ms header ({gw})")
        if scenario.name == "o1-fake-stream" and not gw.get("x-gateway-patched"):
            raise SetupError(f"{name}: o1-mini was not patched (headers {gw})")
        if scenario.name != "o1-fake-stream" and not any("route" in k for k in gw):
            raise SetupError(f"{name}: model auto was not routed (headers {gw})")


def host_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of the whole machine, from the first line of /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def own_cpu_s() -> float:
    """CPU seconds of this process plus its reaped children (wrk runs are reaped children)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(
    wrk: str | None,
    target: Target,
    upstream: Target,
    redis_pids: list[int],
    scenario: Scenario,
    connections: int,
    warmup: int,
    seconds: int,
) -> Cell:
    url = target.base + "/chat/completions"
    body = target.body(scenario)
    assert body is not None
    if warmup > 0:
        warm = run_load(wrk, url, body, target.auth, connections, warmup)  # discarded
        target.requests += warm.requests
    groups = [target.pids, upstream.pids if target is not upstream else [], redis_pids]
    ticks = [cpu_ticks(pids) for pids in groups]
    busy, steal = host_ticks()
    own = own_cpu_s()
    started = time.monotonic()
    load = run_load(wrk, url, body, target.auth, connections, seconds)
    wall_ms = (time.monotonic() - started) * 1000
    loadgen_ms = (own_cpu_s() - own) * 1000
    busy_after, steal_after = host_ticks()
    used = [(cpu_ticks(pids) - t0) * TICK_MS for pids, t0 in zip(groups, ticks, strict=True)]
    host_ms = (busy_after - busy) * TICK_MS
    target.requests += load.requests

    def pct(ms: float) -> float:
        return 100 * ms / wall_ms

    return Cell(
        scenario=scenario.name,
        concurrency=connections,
        target=target.name,
        kind=target.kind,
        load=load,
        cpu_ms_per_req=used[0] / load.requests if load.requests else None,
        cpu_percent=pct(used[0]),
        upstream_cpu_percent=pct(used[0] if target is upstream else used[1]),
        redis_cpu_percent=pct(used[2]) if redis_pids else None,
        peak_rss_mb=peak_rss_mb(target.pids),
        host_busy_percent=pct(host_ms),
        loadgen_percent=pct(loadgen_ms),
        other_percent=max(0.0, pct(host_ms - sum(used) - loadgen_ms)),
        steal_percent=pct((steal_after - steal) * TICK_MS),
    )


def merge_slices(slices: list[Cell]) -> Cell:
    """One cell from a target's interleaved slices: counts and CPU summed, shares averaged over
    time, latency percentiles the median of the slices'."""
    first = slices[0]
    requests = sum(c.load.requests for c in slices)
    seconds = sum(c.load.seconds for c in slices)
    errors: dict[str, int] = {}
    for c in slices:
        for kind, n in c.load.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    load = LoadResult(
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=statistics.median(c.load.p50_ms for c in slices),
        p99_ms=statistics.median(c.load.p99_ms for c in slices),
        non_2xx=sum(c.load.non_2xx for c in slices),
        socket_errors=errors,
        raw="\n".join(c.load.raw for c in slices),
    )

    def share(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        if len(known) != len(values) or not seconds:
            return None
        return sum(v * c.load.seconds for v, c in zip(known, slices, strict=True)) / seconds

    cpu = [c.cpu_ms_per_req for c in slices]
    cpu_known = [v for v in cpu if v is not None]
    rss = [c.peak_rss_mb for c in slices if c.peak_rss_mb is not None]
    cpu_ms = None
    if requests and len(cpu_known) == len(cpu):
        cpu_ms = sum(v * c.load.requests for v, c in zip(cpu_known, slices, strict=True)) / requests
    return dataclasses.replace(
        first,
        load=load,
        cpu_ms_per_req=cpu_ms,
        cpu_percent=share([c.cpu_percent for c in slices]),
        upstream_cpu_percent=share([c.upstream_cpu_percent for c in slices]),
        redis_cpu_percent=share([c.redis_cpu_percent for c in slices]),
        peak_rss_mb=max(rss) if rss else None,
        host_busy_percent=share([c.host_busy_percent for c in slices]) or 0.0,
        loadgen_percent=share([c.loadgen_percent for c in slices]) or 0.0,
        other_percent=share([c.other_percent for c in slices]) or 0.0,
        steal_percent=share([c.steal_percent for c in slices]) or 0.0,
    )


def busy_percent(pids: Sequence[int], window_s: float) -> float:
    """CPU of `pids` over the next `window_s` seconds, in % of one core."""
    before = cpu_ticks(pids)
    time.sleep(window_s)
    return 100 * (cpu_ticks(pids) - before) * TICK_MS / (window_s * 1000)


def drain(target: Target, limit_s: float) -> bool:
    """Wait until the target is idle (under 10% of a core); False if it is not within limit_s."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if busy_percent(target.pids, 0.3) < 10:
            return True
    return False


def start_redis(logdir: Path, started: list[Server]) -> tuple[str, Server]:
    """A real redis-server for the gateways' admission, as in production."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SetupError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    server = Server("redis", [*argv, "--dir", str(logdir)], clean_env(), logdir)
    started.append(server)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return f"redis://{HOST}:{port}/0", server
        except OSError:
            if time.monotonic() > deadline:
                raise SetupError("redis-server did not start") from None
            time.sleep(0.05)


def redis_calls(url: str) -> dict[str, int]:
    """Commands Redis has run so far, by name (INFO commandstats)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    out = subprocess.run(
        ["redis-cli", "-p", port, "INFO", "commandstats"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    calls: dict[str, int] = {}
    for match in re.finditer(r"^cmdstat_(\w+):calls=(\d+)", out, re.MULTILINE):
        calls[match.group(1)] = int(match.group(2))
    return calls


def write_teams_file(tmp: Path, name: str = "bench", key: str = GATEWAY_KEY) -> Path:
    """A team on tier-5 with every limit lifted (tier-5 allows o1 at 20 RPM), one key."""
    lifted = {"requests_per_minute": HUGE, "tokens_per_minute": HUGE * 1000}
    team = {
        "name": name,
        "tier": "tier-5",
        "budget_usd": HUGE,
        "limits": {**lifted, "models": {"o1-mini": lifted, "o1-preview": lifted}},
        "keys": [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}],
    }
    path = tmp / "teams.yaml"
    path.write_text(json.dumps({"teams": [team]}, indent=2))  # JSON is YAML
    return path


# Gateway variants beyond the full pipeline (on the default http1 client): opt-in
# comparisons, one worker.
VARIANTS = {
    "aiohttp": {"O1GW__UPSTREAM__CLIENT": "aiohttp"},
    "httpx": {"O1GW__UPSTREAM__CLIENT": "httpx"},
    "noadmit": {"O1GW__ADMISSION__ENABLED": "false"},
}


def start_simulator(logdir: Path, started: list[Server]) -> Target:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "simulate", "--host", HOST, "--port", str(port)]
    sim = Server("simulator", [*argv, "--log-level", "warning"], clean_env(), logdir)
    started.append(sim)
    base = f"http://{HOST}:{port}/v1"
    return Target("direct", "direct", base, sim, port, f"Bearer {SIM_KEY}", [sim.proc.pid])


def start_gateway(
    name: str,
    workers: int,
    sim_base: str,
    redis_url: str,
    teams: Path,
    logdir: Path,
    started: list[Server],
    extra: dict[str, str] | None = None,
) -> Target:
    port = free_port()
    env = clean_env(
        OPENAI_BASE_URL=sim_base,
        OPENAI_API_KEY=SIM_KEY,
        REDIS_URL=redis_url,
        O1GW__ADMISSION__TEAMS_FILE=str(teams),
        **(extra or {}),
    )
    # Default log level (info): the access log writes one JSON line per request to stderr,
    # which Server sends to a file, as in production.
    argv = [sys.executable, "-m", "gateway", "serve", "--host", HOST, "--port", str(port)]
    server = Server(name, [*argv, "--workers", str(workers)], env, logdir)
    started.append(server)
    base = f"http://{HOST}:{port}/v1"
    # uvicorn's process manager keeps the socket too: it and the workers are measured.
    return Target(
        name,
        "gateway",
        base,
        server,
        port,
        f"Bearer {GATEWAY_KEY}",
        [],
        processes=workers + (1 if workers > 1 else 0),
    )


def ensure_litellm(venv: Path, spec: str) -> Path:
    """LiteLLM's proxy in its own virtual environment (created and installed when missing)."""
    binary = venv / "bin" / "litellm"
    if binary.exists():
        return binary
    print(f"installing LiteLLM into {venv} ({spec}) ...", flush=True)
    started = time.monotonic()
    try:
        if not (venv / "bin" / "pip").exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", spec],
            check=True,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "")[-800:]
        raise SetupError(f"LiteLLM install failed ({exc.returncode}): {tail}") from exc
    except (subprocess.SubprocessError, OSError) as exc:
        raise SetupError(f"LiteLLM install failed: {exc}") from exc
    if not binary.exists():
        raise SetupError(f"LiteLLM installed but {binary} is missing")
    print(f"LiteLLM installed in {time.monotonic() - started:.0f}s", flush=True)
    return binary


def litellm_version(venv: Path) -> str:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m;print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() or "?"


def start_litellm(binary: Path, sim_base: str, logdir: Path, started: list[Server]) -> Target:
    """LiteLLM proxy, one worker, no database, on the same simulated upstream."""
    config = logdir / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": "gpt-4o",
                        "litellm_params": {
                            "model": "openai/gpt-4o-2024-08-06",
                            "api_base": sim_base,
                            "api_key": SIM_KEY,
                        },
                    }
                ],
                "general_settings": {"master_key": LITELLM_KEY},
                "litellm_settings": {"telemetry": False},
            },
            indent=2,
        )
    )
    port = free_port()
    env = clean_env(LITELLM_LOG="ERROR", LITELLM_LOCAL_MODEL_COST_MAP="True")
    for name in ("PYTHONPATH", "DATABASE_URL", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join([str(binary.parent), env.get("PATH", "")])
    argv = [str(binary), "--config", str(config), "--host", HOST, "--port", str(port)]
    server = Server("litellm", [*argv, "--num_workers", "1"], env, logdir)
    started.append(server)
    base = f"http://{HOST}:{port}/v1"
    server.wait_http(f"http://{HOST}:{port}/health/liveliness", {}, timeout_s=180)
    target = Target("litellm-1w", "litellm", base, server, port, f"Bearer {LITELLM_KEY}", [])
    attach(target)
    return target


def attach(target: Target, timeout_s: float = 30.0) -> None:
    """Find the processes holding the target's listening socket, then check each scenario."""
    deadline = time.monotonic() + timeout_s
    owners = serving_pids(target.server, target.port)
    while len(owners) < target.processes and time.monotonic() < deadline:
        time.sleep(0.2)
        owners = serving_pids(target.server, target.port)
    if not owners:
        raise SetupError(f"{target.name}: no process holds the listening socket {target.port}")
    if len(owners) < target.processes:
        print(f"!! {target.name}: only {len(owners)} of {target.processes} processes came up")
    print(f"{target.name}: pids {owners} hold :{target.port} (measured, CPU and RSS summed)")
    target.pids = owners
    check_target(target)


def start_targets(
    args: argparse.Namespace, logdir: Path, started: list[Server], redis_url: str
) -> tuple[Target, list[Target]]:
    direct = start_simulator(logdir, started)
    teams = write_teams_file(logdir)
    gateways = [
        start_gateway(f"gw-{w}w", w, direct.base, redis_url, teams, logdir, started)
        for w in args.workers
    ]
    for variant in args.variants:
        gateways.append(
            start_gateway(
                f"gw-{variant}-1w",
                1,
                direct.base,
                redis_url,
                teams,
                logdir,
                started,
                VARIANTS[variant],
            )
        )
    direct.server.wait_http(direct.base + "/models", {"Authorization": direct.auth})
    attach(direct)
    for gw in gateways:
        gw.server.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
        attach(gw)
    return direct, gateways


def fill_added(cells: list[Cell]) -> None:
    direct = {(c.scenario, c.concurrency): c for c in cells if c.target == "direct"}
    for cell in cells:
        base = direct.get((cell.scenario, cell.concurrency))
        if cell.target != "direct" and base:
            cell.added_p50_ms = cell.load.p50_ms - base.load.p50_ms
            cell.added_p99_ms = cell.load.p99_ms - base.load.p99_ms


def _ms(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.3f}"


def markdown_table(head: list[str], rows: list[list[str]], left: set[int]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cols: list[str]) -> str:
        cells_ = [
            s.ljust(w) if i in left else s.rjust(w)
            for i, (s, w) in enumerate(zip(cols, widths, strict=True))
        ]
        return "| " + " | ".join(cells_) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i not in left else ("-" * (w + 2))
            for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def render_table(cells: list[Cell]) -> str:
    head = [
        "scenario",
        "conc",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "added p50 ms",
        "added p99 ms",
        "CPU ms/req",
        "CPU %",
        "sim CPU %",
        "redis CPU %",
        "wrk CPU %",
        "host busy %",
        "peak RSS MB",
        "errors",
    ]
    rows = [
        [
            c.scenario,
            str(c.concurrency),
            c.target,
            f"{c.load.rps:,.0f}",
            _ms(c.load.p50_ms),
            _ms(c.load.p99_ms),
            _signed(c.added_p50_ms),
            _signed(c.added_p99_ms),
            _ms(c.cpu_ms_per_req),
            _ms(c.cpu_percent, 0),
            _ms(c.upstream_cpu_percent, 0),
            _ms(c.redis_cpu_percent, 0),
            _ms(c.loadgen_percent, 0),
            _ms(c.host_busy_percent, 0),
            _ms(c.peak_rss_mb, 1),
            str(c.load.errors),
        ]
        for c in cells
    ]
    return markdown_table(head, rows, {0, 2})


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or math.isnan(ours) or not theirs > 0:
        return None
    return ours / theirs


def litellm_table(cells: list[Cell]) -> str:
    """Ours (full pipeline, one worker) next to LiteLLM (one worker), as ratios."""
    by = {(c.scenario, c.concurrency, c.target): c for c in cells}
    head = [
        "scenario",
        "conc",
        "req/s ours",
        "req/s LiteLLM",
        "req/s ratio",
        "added p50 ours",
        "added p50 LiteLLM",
        "p50 ratio",
        "added p99 ours",
        "added p99 LiteLLM",
        "p99 ratio",
        "CPU ms/req ours",
        "CPU ms/req LiteLLM",
        "RSS MB ours",
        "RSS MB LiteLLM",
    ]
    rows = []
    for (scenario, conc, target), theirs in by.items():
        ours = by.get((scenario, conc, HOT))
        if target != "litellm-1w" or ours is None:
            continue
        rps = _ratio(ours.load.rps, theirs.load.rps)
        p50 = _ratio(ours.added_p50_ms, theirs.added_p50_ms)
        p99 = _ratio(ours.added_p99_ms, theirs.added_p99_ms)
        rows.append(
            [
                scenario,
                str(conc),
                f"{ours.load.rps:,.0f}",
                f"{theirs.load.rps:,.0f}",
                "-" if rps is None else f"{rps:.1f}x",
                _signed(ours.added_p50_ms),
                _signed(theirs.added_p50_ms),
                _ms(p50),
                _signed(ours.added_p99_ms),
                _signed(theirs.added_p99_ms),
                _ms(p99),
                _ms(ours.cpu_ms_per_req),
                _ms(theirs.cpu_ms_per_req),
                _ms(ours.peak_rss_mb, 1),
                _ms(theirs.peak_rss_mb, 1),
            ]
        )
    return markdown_table(head, rows, {0})


def _rounds(cell: Cell) -> str:
    if not cell.round_added_p50_ms:
        return ""
    return "; by round " + ", ".join(f"{v:+.3f}" for v in cell.round_added_p50_ms)


def verdict(cells: list[Cell]) -> list[str]:
    out: list[str] = []
    by = {(c.scenario, c.concurrency, c.target): c for c in cells}

    def say(ok: bool, text: str) -> None:
        out.append(f"{'PASS' if ok else 'MISS'}  [{HOT}, full pipeline] {text}")

    for scenario in SCENARIOS:
        cell = by.get((scenario, 1, HOT))
        if cell and cell.added_p50_ms is not None and cell.added_p99_ms is not None:
            say(
                cell.added_p50_ms < TARGET_ADDED_P50_MS,
                f"added p50 at c=1, {scenario}: {cell.added_p50_ms:.3f} ms "
                f"(target < {TARGET_ADDED_P50_MS:g} ms){_rounds(cell)}",
            )
            say(
                cell.added_p99_ms < TARGET_ADDED_P99_MS,
                f"added p99 at c=1, {scenario}: {cell.added_p99_ms:.3f} ms "
                f"(target < {TARGET_ADDED_P99_MS:g} ms)",
            )
    cell = by.get(("non-stream", 64, HOT))
    if cell:
        direct = by.get(("non-stream", 64, "direct"))
        ceiling = f"; direct simulator {direct.load.rps:,.0f} req/s" if direct else ""
        say(
            cell.load.rps >= TARGET_RPS_C64,
            f"non-stream at c=64: {cell.load.rps:,.0f} req/s "
            f"(target >= {TARGET_RPS_C64:,.0f}{ceiling})",
        )
        if cell.cpu_ms_per_req is not None:
            say(
                cell.cpu_ms_per_req < TARGET_CPU_MS,
                f"CPU per proxied request, non-stream at c=64: {cell.cpu_ms_per_req:.3f} ms "
                f"(target < {TARGET_CPU_MS:g} ms)",
            )
    for who, note in ((FRESH, "a fresh process"), (HOT, "after every earlier cell")):
        streams = [
            c
            for c in cells
            if c.target == who
            and c.concurrency == 512
            and SCENARIOS[c.scenario].stream
            and c.peak_rss_mb is not None
        ]
        if streams:
            worst = max(streams, key=lambda c: c.peak_rss_mb or 0.0)
            assert worst.peak_rss_mb is not None
            say(
                worst.peak_rss_mb < TARGET_RSS_MB,
                f"peak RSS with 512 concurrent streams ({worst.scenario}, {note}): "
                f"{worst.peak_rss_mb:.1f} MB (target < {TARGET_RSS_MB:g} MB)",
            )
    for scenario in SCENARIOS:
        ours, theirs = by.get((scenario, 64, HOT)), by.get((scenario, 64, "litellm-1w"))
        if ours and theirs:
            ratio = _ratio(ours.load.rps, theirs.load.rps)
            say(
                ratio is not None and ratio >= TARGET_LITELLM_RPS_RATIO,
                f"vs LiteLLM, {scenario} at c=64: "
                f"{'-' if ratio is None else f'{ratio:.1f}'}x its req/s "
                f"(target >= {TARGET_LITELLM_RPS_RATIO:g}x)",
            )
        ours, theirs = by.get((scenario, 1, HOT)), by.get((scenario, 1, "litellm-1w"))
        if ours and theirs and ours.added_p50_ms is not None:
            ratio = _ratio(max(ours.added_p50_ms, 0.0), theirs.added_p50_ms)
            say(
                ratio is not None and ratio <= TARGET_LITELLM_ADDED_RATIO,
                f"vs LiteLLM, {scenario} at c=1: added p50 {ours.added_p50_ms:.3f} ms vs "
                f"{theirs.added_p50_ms or 0:.3f} ms = {'-' if ratio is None else f'{ratio:.3f}'}"
                f" (target <= {TARGET_LITELLM_ADDED_RATIO:g})",
            )
    return out


def admission_round_trips(
    gateways: list[Target], before: dict[str, int], after: dict[str, int]
) -> list[str]:
    """Redis commands per request that went through admission (warm-ups included)."""
    requests = sum(g.requests for g in gateways if "noadmit" not in g.name)
    if not requests:
        return []
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    busy = {k: v for k, v in sorted(delta.items()) if v > 0 and k not in ("info", "ping")}
    lines = [f"Redis commands per admitted request ({requests:,} requests with admission on):"]
    lines += [f"  {name}: {count / requests:.3f}" for name, count in busy.items()]
    lines.append(
        "  (evalsha is the admission script: ~1 admit on the request path + ~1 settle after "
        "the response; get: key lookups, cached per key for admission.cache_ttl_s)"
    )
    return lines


def access_log_report(gateways: list[Target]) -> list[str]:
    """Access-log lines each gateway wrote, against the requests it was sent."""
    out = []
    for gw in gateways:
        lines = 0
        with contextlib.suppress(OSError), gw.server.log_path.open("rb") as log:
            while chunk := log.read(1 << 20):
                lines += chunk.count(b'{"request_id":')
        size = gw.server.log_path.stat().st_size / 1e6 if gw.server.log_path.exists() else 0
        share = f"{lines / gw.requests:.2f}" if gw.requests else "-"
        out.append(
            f"  {gw.name}: {lines:,} access-log lines for {gw.requests:,} requests "
            f"({share} per request; log file {size:,.0f} MB)"
        )
    return out


def error_report(cells: list[Cell]) -> list[str]:
    out = []
    for c in cells:
        if not c.load.requests:
            out.append(f"{c.scenario} c={c.concurrency} {c.target}: no request completed")
        elif c.load.errors:
            socket_errs = ", ".join(f"{k} {v}" for k, v in c.load.socket_errors.items() if v)
            out.append(
                f"{c.scenario} c={c.concurrency} {c.target}: non-2xx {c.load.non_2xx}"
                + (f"; socket errors: {socket_errs}" if socket_errs else "")
                + f" (of {c.load.requests} requests)"
            )
    return out


# -- profiling ----------------------------------------------------------------------------------


def _strip_line(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def summarize_profile(raw: str, top: int = 15) -> list[str]:
    """Top self-time frames and a few cumulative buckets from py-spy's raw (collapsed) output."""
    self_time: dict[str, int] = {}
    buckets = {
        "cyclic GC (gc_collect_main)": r"^gc_collect_main ",
        "socket write syscalls": r"^(write|writev|sendmsg|send) \(libc",
        "socket read syscalls": r"^(read|recv|recvmsg|readv) \(libc",
        "event loop wait (epoll)": r"^epoll_\w+ \(libc",
        # The entry frames (gateway/__main__.py, gateway/cli.py) are on every stack.
        "gateway/ request code (cumulative)": r"\(gateway/(?!__main__|cli)",
        "prometheus_client (cumulative)": r"\(prometheus_client/",
    }
    bucket_time = dict.fromkeys(buckets, 0)
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_strip_line(f) for f in stack.split(";")]
        self_time[frames[-1]] = self_time.get(frames[-1], 0) + n
        for name, pattern in buckets.items():
            if any(re.search(pattern, f) for f in frames):
                bucket_time[name] += n
    if not total:
        return ["(py-spy recorded no samples)"]
    out = [f"  top self time ({total} samples):"]
    for frame, n in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    {100 * n / total:5.1f}%  {frame[:110]}")
    out.append("  buckets (a sample counts once per bucket):")
    out += [f"    {100 * n / total:5.1f}%  {name}" for name, n in bucket_time.items()]
    return out


def profile_gateway(wrk: str | None, target: Target, seconds: int, tmp: Path) -> list[str]:
    """py-spy (--native) on the gateway under c=64 non-streaming load; needs py-spy installed."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    py_spy = shutil.which("py-spy", path=search)
    if not py_spy:
        return ["Profile skipped: py-spy is not installed (.venv/bin/pip install py-spy)."]
    url = target.base + "/chat/completions"
    body = target.body(SCENARIOS["non-stream"])
    assert body is not None
    # One worker: the started process serves. More: profile the first worker.
    pid = target.pids[-1] if len(target.pids) > 1 else target.pids[0]
    out = tmp / "profile.raw"
    argv = [py_spy, "record", "--native", "-r", "100", "-f", "raw", "-o", str(out)]
    argv += ["-d", str(seconds), "-p", str(pid)]
    result: list[LoadResult] = []
    loader = threading.Thread(
        target=lambda: result.append(run_load(wrk, url, body, target.auth, 64, seconds + 3)),
        daemon=True,
    )
    loader.start()
    time.sleep(1.5)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return ["Profile failed: py-spy did not finish."]
    finally:
        loader.join(timeout=seconds + 40)
    if done.returncode != 0 or not out.exists():
        return [f"Profile failed: py-spy exited {done.returncode}: {done.stderr.strip()[-300:]}"]
    target.requests += result[0].requests if result else 0
    rps = f"{result[0].rps:,.0f} req/s" if result else "load result missing"
    head = (
        f"Profile: py-spy --native, {seconds}s on {target.name} (pid {pid}), full pipeline, "
        f"c=64 non-stream ({rps} over the load run; sampling slows it)"
    )
    return [head, *summarize_profile(out.read_text())]


def disturbance_report(cells: list[Cell]) -> list[str]:
    """Cells where processes other than ours (other sessions, pytest runs) or the hypervisor
    took CPU: on a small machine that moves the numbers, so say so."""
    return [
        f"{c.scenario} c={c.concurrency} {c.target}: other processes {c.other_percent:.0f}% "
        f"of a core, steal {c.steal_percent:.0f}%"
        for c in cells
        if c.other_percent > 15 or c.steal_percent > 5
    ]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="3 s cells, 1 s warm-up (~2.5 min instead of ~5.5)"
    )
    parser.add_argument("--duration", type=int, help="seconds per measured cell (default 8)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per cell (default 2)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=list(CONCURRENCIES),
        help="connections, comma-separated (default 1,64,512)",
    )
    parser.add_argument(
        "--workers",
        type=_int_list,
        default=list(WORKERS),
        help="full-pipeline gateways to run, by worker count (default 1,2; 1 is always run)",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="opt-in one-worker comparisons, comma-separated: aiohttp or httpx (that upstream "
        "client instead of http1), noadmit (admission off)",
    )
    parser.add_argument(
        "--litellm",
        action="store_true",
        help=f"also measure a LiteLLM proxy (one worker, no database), installed on first use "
        f"into --litellm-venv ({LITELLM_SPEC})",
    )
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    parser.add_argument("--litellm-spec", default=LITELLM_SPEC, help="pip requirement")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk (apt-get install when missing), else the Python generator",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="S",
        help="py-spy the one-worker full-pipeline gateway for S seconds under c=64 "
        "non-streaming load after the table (default: 10 s only if it misses a target; "
        "0: never)",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = [s for s in args.scenarios if s not in SCENARIOS]
    if bad or not args.scenarios:
        parser.error(f"--scenarios: expected some of {', '.join(SCENARIOS)}, got {bad}")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad:
        parser.error(f"--variants: expected some of {', '.join(VARIANTS)}, got {bad}")
    args.workers = sorted({1, *args.workers})
    if args.duration is None:
        args.duration = 3 if args.quick else 8
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.duration < 1 or args.warmup < 1:
        parser.error("--duration and --warmup are whole seconds >= 1")
    return args


@contextlib.contextmanager
def servers_stopped(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in reversed(servers):
            server.stop()


def raise_fd_limit() -> None:
    """512 client connections plus as many upstream ones: lift the open-files limit that the
    servers and wrk (children) inherit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    wrk: str | None = None
    if args.loadgen != "python":
        wrk = ensure_wrk(allow_install=True)
        if wrk is None and args.loadgen == "wrk":
            print("wrk is not available", file=sys.stderr)
            return 2
    loadgen = (
        subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
        .stdout.splitlines()[0]
        .split(" Copyright")[0]
        if wrk
        else "python aiohttp load generator (less precise: shares the CPUs with the servers)"
    )
    litellm_bin: Path | None = None
    if args.litellm:
        try:
            litellm_bin = ensure_litellm(args.litellm_venv, args.litellm_spec)
        except SetupError as exc:
            print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
            return 2
    scenarios = [SCENARIOS[s] for s in args.scenarios]
    n_targets = 1 + len(args.workers) + len(args.variants)
    cells_planned = len(scenarios) * len(args.concurrency) * n_targets
    if args.litellm:
        cells_planned += sum(1 for s in scenarios if s.litellm) * len(args.concurrency)
    per_cell = args.warmup + args.duration
    print(
        f"o1-gateway benchmark (full pipeline): {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, {loadgen}\n"
        f"{cells_planned} cells x ({args.warmup}s warm-up + {args.duration}s) = "
        f"~{cells_planned * per_cell / 60:.1f} min of load; gateways: "
        + ", ".join([*(f"gw-{w}w" for w in args.workers), *args.variants])
        + (", litellm-1w" if args.litellm else "")
    )
    cells: list[Cell] = []
    redis_report: list[str] = []
    access_report: list[str] = []
    servers: list[Server] = []
    profile: list[str] = []
    litellm_note = ""
    with tempfile.TemporaryDirectory(prefix="o1gw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            with servers_stopped(servers):
                # Each server is registered as it starts, so a failure half-way still stops
                # whatever was started.
                redis_url, redis = start_redis(tmp, servers)
                redis_pids = [redis.proc.pid]
                direct, gateways = start_targets(args, tmp, servers, redis_url)
                litellm: Target | None = None
                if litellm_bin is not None:
                    litellm = start_litellm(litellm_bin, direct.base, tmp, servers)
                    litellm_note = (
                        f"LiteLLM {litellm_version(args.litellm_venv)} proxy, one worker, "
                        f"no database, master key auth (venv {args.litellm_venv})"
                    )
                calls_before = redis_calls(redis_url)

                def measure_on(
                    target: Target, scenario: Scenario, connections: int, warmup: int, seconds: int
                ) -> Cell:
                    redis_of = redis_pids if target.kind == "gateway" else []
                    return measure(
                        wrk, target, direct, redis_of, scenario, connections, warmup, seconds
                    )

                def run_cell(target: Target, scenario: Scenario, connections: int) -> bool:
                    """Measure one cell; False if the target still works off wrk's leftovers."""
                    cell = measure_on(target, scenario, connections, args.warmup, args.duration)
                    cells.append(cell)
                    report(target, scenario, cell)
                    # wrk stops with up to `connections` requests in flight: let the target
                    # finish them so they do not load the next cell.
                    return connections == 1 or drain(target, DRAIN_S)

                def run_interleaved(targets: list[Target], scenario: Scenario) -> None:
                    """Concurrency 1: the targets take turns in short slices, in a rotating order;
                    the first is the baseline each round's added p50 is measured against.
                    The host's speed drifts by up to 20% over minutes, and an added latency is the
                    difference of two medians: measured minutes apart, the drift would be in it."""
                    rounds = INTERLEAVE_ROUNDS
                    piece = max(1, round(args.duration / rounds))
                    slices: dict[str, list[Cell]] = {t.name: [] for t in targets}
                    for r in range(rounds):
                        for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
                            warmup = args.warmup if r == 0 else 0
                            slices[target.name].append(
                                measure_on(target, scenario, 1, warmup, piece)
                            )
                    baseline = targets[0]
                    base = slices[baseline.name]
                    for target in targets:
                        cell = merge_slices(slices[target.name])
                        if target is not baseline:
                            cell.round_added_p50_ms = tuple(
                                mine.load.p50_ms - theirs.load.p50_ms
                                for mine, theirs in zip(slices[target.name], base, strict=True)
                            )
                        cells.append(cell)
                        report(target, scenario, cell)

                def report(target: Target, scenario: Scenario, cell: Cell) -> None:
                    connections = cell.concurrency
                    flag = f"  !! {cell.load.errors} errors" if cell.load.errors else ""
                    if not cell.load.requests:
                        flag = "  !! no request completed"
                    print(
                        f"  {scenario.name:<14} c={connections:<3} {target.name:<16} "
                        f"{cell.load.rps:>9,.0f} req/s  p50 {_ms(cell.load.p50_ms)} ms  "
                        f"p99 {_ms(cell.load.p99_ms)} ms  "
                        f"CPU {_ms(cell.cpu_ms_per_req)} ms/req{flag}",
                        flush=True,
                    )
                    if target.server.proc.poll() is not None:
                        raise SetupError(f"{target.name} died:\n{target.server.log_tail()}")

                for scenario in scenarios:
                    for connections in args.concurrency:
                        if connections == 1:
                            run_interleaved([direct, *gateways], scenario)
                            continue
                        for target in [direct, *gateways]:
                            if not run_cell(target, scenario, connections):
                                print(f"  !! {target.name} still busy after {DRAIN_S:g}s")
                # LiteLLM last: its backlog at high concurrency must not load our cells. When
                # it cannot work it off, it is restarted (its RSS then starts again).
                for scenario in scenarios:
                    for connections in args.concurrency:
                        if litellm is None or litellm.body(scenario) is None:
                            continue
                        if not run_cell(litellm, scenario, connections):
                            print(f"  .. {litellm.name} still busy after {DRAIN_S:g}s: restart")
                            litellm.server.stop()
                            assert litellm_bin is not None
                            litellm = start_litellm(litellm_bin, direct.base, tmp, servers)
                # The RSS target is about 512 streams, not about everything a long-running
                # process has served before: measure it on a fresh one-worker gateway too.
                if 512 in args.concurrency:
                    teams = write_teams_file(tmp)
                    for scenario in scenarios:
                        if not scenario.stream:
                            continue
                        fresh = start_gateway(FRESH, 1, direct.base, redis_url, teams, tmp, servers)
                        fresh.server.wait_http(f"http://{HOST}:{fresh.port}/healthz", {})
                        attach(fresh)
                        run_cell(fresh, scenario, 512)
                        fresh.server.stop()
                fill_added(cells)
                redis_report = admission_round_trips(gateways, calls_before, redis_calls(redis_url))
                hot = next(g for g in gateways if g.name == HOT)
                missed = any(line.startswith("MISS") for line in verdict(cells))
                seconds = args.profile if args.profile is not None else (10 if missed else 0)
                if seconds > 0:
                    print(f"\nprofiling {hot.name} for {seconds}s under c=64 non-stream load ...")
                    profile = profile_gateway(wrk, hot, seconds, tmp)
            access_report = access_log_report(gateways)
        except SetupError as exc:
            print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
            return 2
    print("\n" + render_table(cells))
    print(
        "\nadded = target minus the direct simulator, same scenario and concurrency, same run "
        "(at c=64/512\nmostly queueing: read it next to req/s). gw-Nw = the full pipeline with "
        "N workers (auth, admission\non redis-server, routing, patches, metrics, access log). "
        "CPU ms/req, CPU % and peak RSS (VmHWM so\nfar, summed over the serving processes) are "
        "the measured server's: the simulator on direct rows.\nAll CPU % are of one core (host "
        f"busy % of all {os.cpu_count()} cores, max {100 * (os.cpu_count() or 1)}). sim CPU % "
        "near 100: the\nupstream, not the gateway, was the limit. wrk and the servers share the "
        "cores: host busy near the\nmax means the machine was the limit."
    )
    if litellm_note:
        print(f"\nvs LiteLLM ({litellm_note}); ratios are ours / LiteLLM's:\n")
        print(litellm_table(cells))
    if redis_report:
        print("\n" + "\n".join(redis_report))
    if access_report:
        print(
            "\nAccess log (gateway stderr to a file, default log level info; wrk leaves up to c"
            " requests\nin flight at the end of each run, which are logged but not counted):"
        )
        print("\n".join(access_report))
    print("\nVerdict (issue 8 targets):")
    for line in verdict(cells):
        print("  " + line)
    if profile:
        print("\n" + "\n".join(profile))
    disturbed = disturbance_report(cells)
    if disturbed:
        print(
            "\n!! CPU taken by something else during some cells (numbers there are pessimistic;"
            " re-run on a quiet machine):"
        )
        for line in disturbed:
            print("!!   " + line)
    theirs = error_report([c for c in cells if c.kind == "litellm"])
    if theirs:
        print("\nLiteLLM cells with errors (reported, not counted against this run):")
        for line in theirs:
            print("  " + line)
    problems = error_report([c for c in cells if c.kind != "litellm"])
    if problems:
        bar = "!" * 78
        print(f"\n{bar}\n!! THIS RUN HAD ERRORS: the numbers above are not trustworthy\n{bar}")
        for line in problems:
            print("!!   " + line)
        return 1
    print("\nNo errors: every response of ours and the simulator's was 2xx, no socket errors.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
