"""Gateway overhead benchmark: the simulated upstream direct vs. through the gateway, same run.

Run from the repository root (not a pytest test, never collected):

    .venv/bin/python tests/benchmarks/bench_proxy.py [--quick] [--duration S] [--clients aiohttp,httpx]

It starts `python -m gateway simulate` and one `python -m gateway serve --workers 1` per upstream
client on loopback ports, then for each scenario (non-streaming / streaming chat completion) and
concurrency (1 / 64) measures the simulator direct and each gateway back to back with wrk
(installed with apt-get when missing; a bounded aiohttp load generator otherwise). It prints one
table and a verdict against the issue's targets: added p50 latency under 1 ms at concurrency 1,
and at least 3,000 requests/s at concurrency 64 (non-streaming) with one worker.

Exit status: 0 measured (PASS or MISS), 1 the run had errors or non-2xx answers, 2 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import socket
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
# The gateway does not know this key: it serves it as its anonymous team (see clean_env use).
AUTH = f"Bearer {SIM_KEY}"
MESSAGES = [{"role": "user", "content": "Say hello in five words."}]
BODIES = {
    "non-stream": json.dumps({"model": "gpt-4o", "messages": MESSAGES}),
    "stream": json.dumps(
        {
            "model": "gpt-4o",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ),
}
CONCURRENCY = {1: 1, 64: 2}  # connections -> wrk threads
TARGET_ADDED_P50_MS = 1.0
TARGET_RPS_C64 = 3000.0
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
    target: str  # "direct", "gateway-aiohttp", "gateway-httpx"
    load: LoadResult
    cpu_ms_per_req: float | None
    cpu_percent: float | None
    upstream_cpu_percent: float | None
    peak_rss_mb: float | None
    # Whole machine during the cell, in % of one core (2 cores = 200): busy, the load
    # generator's share, what other processes used (busy minus ours) and hypervisor steal.
    host_busy_percent: float = 0.0
    loadgen_percent: float = 0.0
    other_percent: float = 0.0
    steal_percent: float = 0.0
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None


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
    return LoadResult(
        requests=int(done.group(1)),
        seconds=_duration_s(done.group(2), done.group(3)),
        rps=float(rps.group(1)),
        p50_ms=pct["50"],
        p99_ms=pct["99"],
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        raw=text,
    )


def run_wrk(wrk: str, url: str, body: str, connections: int, seconds: int) -> LoadResult:
    threads = CONCURRENCY[connections]
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    env = {**os.environ, "BENCH_BODY": body, "BENCH_AUTH": AUTH}
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
    url: str, body: str, connections: int, seconds: float, max_requests: int
) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    non_2xx = 0
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    deadline = time.perf_counter() + seconds
    data = body.encode()
    headers = {"Content-Type": "application/json", "Authorization": AUTH}
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


def run_python_load(url: str, body: str, connections: int, seconds: int) -> LoadResult:
    import uvloop

    return uvloop.run(_py_load(url, body, connections, float(seconds), max_requests=500_000))


def run_load(wrk: str | None, url: str, body: str, connections: int, seconds: int) -> LoadResult:
    if wrk:
        return run_wrk(wrk, url, body, connections, seconds)
    return run_python_load(url, body, connections, seconds)


# -- sanity checks ------------------------------------------------------------------------------


def check_target(name: str, base: str, through_gateway: bool) -> None:
    """One request per scenario, checked properly (wrk only counts status codes)."""
    for scenario, body in BODIES.items():
        req = urllib.request.Request(
            base + "/chat/completions",
            data=body.encode(),
            headers={"Content-Type": "application/json", "Authorization": AUTH},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            raise SetupError(f"{name} {scenario}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        if status != 200:
            raise SetupError(f"{name} {scenario}: HTTP {status}")
        if through_gateway and "x-gateway-upstream-ms" not in headers:
            raise SetupError(f"{name} {scenario}: no x-gateway-upstream-ms header")
        if scenario == "stream":
            events = [ln[6:] for ln in raw.decode().split("\n") if ln.startswith("data: ")]
            if not events or events[-1] != "[DONE]":
                raise SetupError(f"{name} stream: does not end with data: [DONE]: {raw[-200:]!r}")
            last = json.loads(events[-2])
            if last.get("choices") != [] or not last.get("usage"):
                raise SetupError(f"{name} stream: no usage chunk before [DONE]: {events[-2]}")
        else:
            answer = json.loads(raw)
            if answer.get("object") != "chat.completion" or not answer.get("choices"):
                raise SetupError(f"{name} non-stream: not a chat.completion: {raw[:200]!r}")


# -- the run ------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Target:
    name: str
    base: str  # ".../v1"
    server: Server
    port: int
    pids: list[int]


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
    scenario: str,
    connections: int,
    warmup: int,
    seconds: int,
) -> Cell:
    url = target.base + "/chat/completions"
    body = BODIES[scenario]
    run_load(wrk, url, body, connections, warmup)  # warm-up burst, discarded
    servers = [target] if target is upstream else [target, upstream]
    ticks = [cpu_ticks(t.pids) for t in servers]
    busy, steal = host_ticks()
    own = own_cpu_s()
    started = time.monotonic()
    load = run_load(wrk, url, body, connections, seconds)
    wall_ms = (time.monotonic() - started) * 1000
    loadgen_ms = (own_cpu_s() - own) * 1000
    busy_after, steal_after = host_ticks()
    used = [
        (cpu_ticks(t.pids) - before) * TICK_MS for t, before in zip(servers, ticks, strict=True)
    ]
    host_ms = (busy_after - busy) * TICK_MS

    def pct(ms: float) -> float:
        return 100 * ms / wall_ms

    return Cell(
        scenario=scenario,
        concurrency=connections,
        target=target.name,
        load=load,
        cpu_ms_per_req=used[0] / load.requests if load.requests else None,
        cpu_percent=pct(used[0]),
        upstream_cpu_percent=pct(used[-1]),
        peak_rss_mb=peak_rss_mb(target.pids),
        host_busy_percent=pct(host_ms),
        loadgen_percent=pct(loadgen_ms),
        other_percent=max(0.0, pct(host_ms - sum(used) - loadgen_ms)),
        steal_percent=pct((steal_after - steal) * TICK_MS),
    )


# Gateway variants: the upstream client, and whether admission (rate limits, budgets) runs.
VARIANTS = {
    "aiohttp": {"O1GW__UPSTREAM__CLIENT": "aiohttp"},
    "httpx": {"O1GW__UPSTREAM__CLIENT": "httpx"},
    "aiohttp-noadmit": {"O1GW__UPSTREAM__CLIENT": "aiohttp", "O1GW__ADMISSION__ENABLED": "false"},
}


def start_redis(logdir: Path, started: list[Server]) -> str:
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
            return f"redis://{HOST}:{port}/0"
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


def start_targets(
    clients: list[str], logdir: Path, started: list[Server], redis_url: str = ""
) -> tuple[Target, list[Target]]:
    python = sys.executable
    sim_port = free_port()
    sim = Server(
        "simulator",
        [
            python,
            "-m",
            "gateway",
            "simulate",
            "--host",
            HOST,
            "--port",
            str(sim_port),
            "--log-level",
            "warning",
        ],
        clean_env(),
        logdir,
    )
    started.append(sim)
    sim_base = f"http://{HOST}:{sim_port}/v1"
    direct = Target("direct", sim_base, sim, sim_port, [sim.proc.pid])
    gateways: list[Target] = []
    for client in clients:
        port = free_port()
        env = clean_env(
            OPENAI_BASE_URL=sim_base,
            OPENAI_API_KEY=SIM_KEY,
            **VARIANTS[client],
            **({"REDIS_URL": redis_url} if redis_url else {}),
            # The load's key is unknown to the gateway: it is served as team "bench", whose tier
            # limits are lifted so the benchmark measures the pipeline, not 429s.
            O1GW__ADMISSION__ANONYMOUS_TEAM="bench",
            O1GW__ADMISSION__TEAMS_FILE="",
            **{
                "O1GW__TIERS__TIER-5__LIMITS__REQUESTS_PER_MINUTE": "1000000000",
                "O1GW__TIERS__TIER-5__LIMITS__TOKENS_PER_MINUTE": "1000000000000",
            },
        )
        argv = [python, "-m", "gateway", "serve", "--host", HOST, "--port", str(port)]
        argv += ["--workers", "1", "--log-level", "warning"]
        server = Server(f"gateway-{client}", argv, env, logdir)
        started.append(server)
        gateways.append(Target(f"gateway-{client}", f"http://{HOST}:{port}/v1", server, port, []))
    sim.wait_http(sim_base + "/models", {"Authorization": AUTH})
    for gw in gateways:
        gw.server.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
    for target in [direct, *gateways]:
        owners = serving_pids(target.server, target.port)
        if not owners:
            raise SetupError(f"{target.name}: no process holds the listening socket {target.port}")
        if owners != [target.server.proc.pid]:
            print(
                f"!! {target.name}: listening socket held by {owners}, "
                f"not the started pid {target.server.proc.pid}: measuring {owners}"
            )
        else:
            print(f"{target.name}: pid {owners[0]} holds :{target.port} (measured process)")
        target.pids = owners
        check_target(target.name, target.base, target in gateways)
    return direct, gateways


def fill_added(cells: list[Cell]) -> None:
    direct = {(c.scenario, c.concurrency): c for c in cells if c.target == "direct"}
    for cell in cells:
        base = direct.get((cell.scenario, cell.concurrency))
        if cell.target != "direct" and base:
            cell.added_p50_ms = cell.load.p50_ms - base.load.p50_ms
            cell.added_p99_ms = cell.load.p99_ms - base.load.p99_ms


def _ms(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


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
            _ms(c.loadgen_percent, 0),
            _ms(c.host_busy_percent, 0),
            _ms(c.peak_rss_mb, 1),
            str(c.load.errors),
        ]
        for c in cells
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    left = {0, 2}

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


def verdict(cells: list[Cell], clients: list[str]) -> list[str]:
    out: list[str] = []
    by = {(c.scenario, c.concurrency, c.target): c for c in cells}
    for client in clients:
        target = f"gateway-{client}"
        role = "hot path" if client == "aiohttp" else "comparison"
        for scenario in BODIES:
            cell = by.get((scenario, 1, target))
            if cell and cell.added_p50_ms is not None:
                ok = cell.added_p50_ms < TARGET_ADDED_P50_MS
                out.append(
                    f"{'PASS' if ok else 'MISS'}  [{target}, {role}] added p50 at c=1, {scenario}: "
                    f"{cell.added_p50_ms:.3f} ms (target < {TARGET_ADDED_P50_MS:g} ms)"
                )
        cell = by.get(("non-stream", 64, target))
        if cell:
            ok = cell.load.rps >= TARGET_RPS_C64
            direct = by.get(("non-stream", 64, "direct"))
            ceiling = f"; direct simulator {direct.load.rps:,.0f} req/s" if direct else ""
            out.append(
                f"{'PASS' if ok else 'MISS'}  [{target}, {role}] c=64 non-stream, 1 worker: "
                f"{cell.load.rps:,.0f} req/s (target >= {TARGET_RPS_C64:,.0f}{ceiling})"
            )
    return out


def admission_round_trips(
    cells: list[Cell], before: dict[str, int], after: dict[str, int], args: argparse.Namespace
) -> list[str]:
    """Redis commands per request that went through admission (warm-ups included in both)."""
    admitted = [c for c in cells if c.target in ("gateway-aiohttp", "gateway-httpx")]
    # Each measured cell was preceded by a warm-up of about the same rate.
    requests = sum(c.load.requests * (1 + args.warmup / args.duration) for c in admitted)
    if not requests:
        return []
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    busy = {k: v for k, v in sorted(delta.items()) if v > 0 and k not in ("info", "ping")}
    lines = [f"Redis commands per admitted request (~{requests:,.0f} requests with admission on):"]
    lines += [f"  {name}: {count / requests:.3f}" for name, count in busy.items()]
    lines.append(
        "  (evalsha is the admission script: ~1 admit on the request path + ~1 settle after "
        "the response; get: key lookups, cached per key for admission.cache_ttl_s)"
    )
    return lines


def error_report(cells: list[Cell]) -> list[str]:
    out = []
    for c in cells:
        if c.load.errors:
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
    out = tmp / "profile.raw"
    argv = [py_spy, "record", "--native", "-r", "100", "-f", "raw", "-o", str(out)]
    argv += ["-d", str(seconds), "-p", str(target.pids[0])]
    result: list[LoadResult] = []
    loader = threading.Thread(
        target=lambda: result.append(run_load(wrk, url, BODIES["non-stream"], 64, seconds + 3)),
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
    rps = f"{result[0].rps:,.0f} req/s" if result else "load result missing"
    head = (
        f"Profile: py-spy --native, {seconds}s on {target.name} (pid {target.pids[0]}), "
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s cells, 1 s warm-up")
    parser.add_argument("--duration", type=int, help="seconds per measured cell (default 8)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per cell (default 2)")
    parser.add_argument(
        "--clients",
        default="aiohttp,aiohttp-noadmit,httpx",
        help="gateway variants to measure, comma-separated: aiohttp, httpx (upstream client, "
        "full pipeline with admission), aiohttp-noadmit (admission off) "
        "(default aiohttp,aiohttp-noadmit,httpx)",
    )
    parser.add_argument(
        "--redis",
        choices=("server", "embedded"),
        default="server",
        help="admission store: a real redis-server started for the run (default), or the "
        "embedded in-process store",
    )
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
        help="py-spy the aiohttp gateway for S seconds at c=64 after the table "
        "(default: 10 s only if it misses a target; 0: never)",
    )
    args = parser.parse_args(argv)
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    bad = [c for c in args.clients if c not in VARIANTS]
    if bad or not args.clients:
        parser.error(f"--clients: expected some of {', '.join(VARIANTS)}, got {args.clients}")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
    cells_planned = len(BODIES) * len(CONCURRENCY) * (1 + len(args.clients))
    print(
        f"o1-gateway proxy benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{loadgen}\n{cells_planned} cells x ({args.warmup}s warm-up + {args.duration}s), "
        f"clients: {', '.join(args.clients)}"
    )
    cells: list[Cell] = []
    redis_report: list[str] = []
    servers: list[Server] = []
    profile: list[str] = []
    with tempfile.TemporaryDirectory(prefix="o1gw-bench-") as tmp:
        try:
            with servers_stopped(servers):
                # start_targets registers each server as it starts, so a failure half-way
                # still stops whatever was started.
                redis_url = start_redis(Path(tmp), servers) if args.redis == "server" else ""
                direct, gateways = start_targets(args.clients, Path(tmp), servers, redis_url)
                calls_before = redis_calls(redis_url) if redis_url else {}
                for scenario in BODIES:
                    for connections in CONCURRENCY:
                        for target in [direct, *gateways]:
                            cell = measure(
                                wrk,
                                target,
                                direct,
                                scenario,
                                connections,
                                args.warmup,
                                args.duration,
                            )
                            cells.append(cell)
                            flag = f"  !! {cell.load.errors} errors" if cell.load.errors else ""
                            print(
                                f"  {scenario:<10} c={connections:<2} {target.name:<16} "
                                f"{cell.load.rps:>9,.0f} req/s  p50 {cell.load.p50_ms:.3f} ms  "
                                f"p99 {cell.load.p99_ms:.3f} ms{flag}",
                                flush=True,
                            )
                        for target in [direct, *gateways]:
                            if target.server.proc.poll() is not None:
                                raise SetupError(f"{target.name} died:\n{target.server.log_tail()}")
                fill_added(cells)
                if redis_url:
                    redis_report = admission_round_trips(
                        cells, calls_before, redis_calls(redis_url), args
                    )
                hot = next((g for g in gateways if g.name == "gateway-aiohttp"), gateways[0])
                missed = any(
                    line.startswith("MISS") and f"[{hot.name}," in line
                    for line in verdict(cells, args.clients)
                )
                seconds = args.profile if args.profile is not None else (10 if missed else 0)
                if seconds > 0:
                    print(f"\nprofiling {hot.name} for {seconds}s under c=64 non-stream load ...")
                    profile = profile_gateway(wrk, hot, seconds, Path(tmp))
        except SetupError as exc:
            print(f"\nSETUP FAILED: {exc}", file=sys.stderr)
            return 2
    print("\n" + render_table(cells))
    print(
        "\nadded = gateway minus direct simulator, same scenario and concurrency, same run "
        "(at c=64 mostly queueing:\nread it next to req/s). CPU ms/req, CPU % and peak RSS "
        "(VmHWM so far) are the measured server's:\nthe simulator on direct rows, the gateway "
        "on gateway rows. All CPU % are of one core (host busy\n% of all "
        f"{os.cpu_count()} cores, max {100 * (os.cpu_count() or 1)}). sim CPU % near 100: the "
        "upstream, not the gateway, was the\nlimit. wrk and the servers share the cores: "
        "host busy near the max means the machine was the limit."
    )
    if redis_report:
        print("\n" + "\n".join(redis_report))
    print("\nVerdict (issue targets):")
    for line in verdict(cells, args.clients):
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
    problems = error_report(cells)
    if problems:
        bar = "!" * 78
        print(f"\n{bar}\n!! THIS RUN HAD ERRORS: the numbers above are not trustworthy\n{bar}")
        for line in problems:
            print("!!   " + line)
        return 1
    print("\nNo errors: every response was 2xx, no socket errors or timeouts.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
