"""The servers a benchmark starts on loopback ports: a real redis-server (admission's store, as
in production), the simulated upstream, gateways with the full pipeline, and a LiteLLM proxy in
its own virtual environment; each checked with one real request per scenario before it is
measured."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.answers import chat_text, responses_text
from bench.processes import (
    HOST,
    ROOT,
    Child,
    SetupError,
    clean_env,
    free_port,
    serving_pids,
)
from bench.scenarios import RESPONSES, SCENARIOS, Scenario

SIM_KEY = "sk-simulated-upstream"
SIM_TODAY = "2024-10-01"  # simulator.today
# The gateway key of the benchmark's team (teams file written per run, by digest). Not a
# secret: it only opens the benchmark's own gateway on loopback.
GATEWAY_KEY = "sk-gw-bench-0123456789abcdefghijklmnopqrstuv"
# /metrics on the gateways' API port answers this bearer key (GATEWAY_METRICS_KEY).
METRICS_KEY = "metrics-bench-0123456789abcdefghijklmnop"
LITELLM_KEY = "sk-litellm-bench"
LITELLM_VENV = Path(tempfile.gettempdir()) / "o1gw-litellm-venv"
# 1.107.0 was a compromised release (pulled from PyPI): never install it.
LITELLM_SPEC = "litellm[proxy]>=1.50,!=1.107.0"
LIFTED = 100_000_000  # a limit or budget no benchmark reaches
ALL = tuple(SCENARIOS.values())

# Gateways beyond the full pipeline on the default http1 client: opt-in comparisons.
VARIANTS = {
    "aiohttp": {"O1GW__UPSTREAM__CLIENT": "aiohttp"},
    "httpx": {"O1GW__UPSTREAM__CLIENT": "httpx"},
    "noadmit": {"O1GW__ADMISSION__ENABLED": "false"},
}


@dataclasses.dataclass(slots=True)
class Subject:
    """A server under measurement: the direct simulator, a gateway or LiteLLM."""

    name: str
    kind: str  # "direct", "gateway" or "litellm"
    base: str  # ".../v1"
    child: Child
    port: int
    auth: str
    pids: list[int]  # the processes holding its listening socket, once attached
    processes: int = 1  # processes expected to hold the listening socket
    requests: int = 0  # sent so far, warm-ups included (to compare with access-log lines)

    def body(self, scenario: Scenario) -> str | None:
        if self.kind == "direct":
            return scenario.direct
        if self.kind == "litellm":
            return scenario.litellm
        return scenario.gateway


# -- redis ----------------------------------------------------------------------------------------


def start_redis(logdir: Path, started: list[Child]) -> tuple[str, Child]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SetupError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    redis = Child("redis", [*argv, "--dir", str(logdir)], clean_env(), logdir)
    started.append(redis)
    redis.wait_port(port)
    return f"redis://{HOST}:{port}/0", redis


def redis_calls(url: str) -> dict[str, int]:
    """Commands Redis has run so far, by name (INFO commandstats)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    out = subprocess.run(
        ["redis-cli", "-p", port, "INFO", "commandstats"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"^cmdstat_(\w+):calls=(\d+)", out, re.M)}


# -- simulator and gateways -----------------------------------------------------------------------


def write_teams_file(tmp: Path, name: str = "bench") -> Path:
    """One team on tier-5 (which allows o1) with every limit and its budget lifted, so the load
    is never 429'd, and one key."""
    lifted = {"requests_per_minute": LIFTED, "tokens_per_minute": LIFTED * 1000}
    team = {
        "name": name,
        "tier": "tier-5",
        "budget_usd": LIFTED,
        "limits": {**lifted, "models": {"o1-mini": lifted, "o1-preview": lifted}},
        "keys": [{"name": name, "sha256": hashlib.sha256(GATEWAY_KEY.encode()).hexdigest()}],
    }
    path = tmp / "teams.yaml"
    path.write_text(json.dumps({"teams": [team]}, indent=2))  # JSON is YAML
    return path


def start_simulator(logdir: Path, started: list[Child]) -> Subject:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "simulate", "--host", HOST, "--port", str(port)]
    sim = Child("simulator", [*argv, "--log-level", "warning"], clean_env(), logdir)
    started.append(sim)
    base = f"http://{HOST}:{port}/v1"
    direct = Subject("direct", "direct", base, sim, port, f"Bearer {SIM_KEY}", [sim.pid])
    sim.wait_http(base + "/models", {"Authorization": direct.auth})
    return direct


def start_gateway(
    name: str,
    workers: int,
    sim_base: str,
    redis_url: str,
    teams: Path,
    logdir: Path,
    started: list[Child],
    extra: dict[str, str] | None = None,
    source: Path = ROOT,
    wrapper: Sequence[str] = (),
) -> Subject:
    """`python -m gateway serve` with the full pipeline as config/gateway.yaml sets it up; not
    waited for (several start side by side). `source` is the checkout whose code and config
    run: this working tree unless an A/B run compares another version of it. `wrapper` runs
    it (valgrind, for `bench.instructions`)."""
    port = free_port()
    if "\nretirement:" in (source / "config" / "gateway.yaml").read_text():
        # The simulator's day: its o1-era models are not retired yet (a checkout from before
        # the retirement shield knows no such setting).
        extra = {"O1GW__RETIREMENT__TODAY": SIM_TODAY, **(extra or {})}
    env = clean_env(
        source,
        OPENAI_BASE_URL=sim_base,
        OPENAI_API_KEY=SIM_KEY,
        REDIS_URL=redis_url,
        O1GW__ADMISSION__TEAMS_FILE=str(teams),
        GATEWAY_METRICS_KEY=METRICS_KEY,
        # Without a Redis URL: a store of this run's own, not the user's embedded one.
        O1GW__REDIS__EMBEDDED_DIR=str(logdir / f"{name}-store"),
        **(extra or {}),
    )
    # Default log level (info): the access log writes one JSON line per request to stderr,
    # which Child sends to a file, as in production.
    argv = [*wrapper, sys.executable, "-m", "gateway", "serve", "--host", HOST, "--port", str(port)]
    child = Child(name, [*argv, "--workers", str(workers)], env, logdir, cwd=source)
    started.append(child)
    base = f"http://{HOST}:{port}/v1"
    # uvicorn's process manager keeps the socket too: it and the workers are measured.
    processes = workers + (1 if workers > 1 else 0)
    auth = f"Bearer {GATEWAY_KEY}"
    return Subject(name, "gateway", base, child, port, auth, [], processes=processes)


def gateway_origin(source: Path) -> Path:
    """Where `import gateway` finds the package when started as start_gateway starts it from
    `source`; SetupError unless that is inside `source` (the project's editable install must not
    stand in for the checkout's code)."""
    script = "import gateway; print(gateway.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=source,
        env=clean_env(source),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise SetupError(f"cannot import gateway from {source}: {done.stderr.strip()[-500:]}")
    origin = Path(done.stdout.strip()).resolve().parent
    if not origin.is_relative_to(source.resolve()):
        raise SetupError(f"gateway started from {source} would import {origin}")
    return origin


def start_subjects(
    workers: Sequence[int],
    variants: Sequence[str],
    logdir: Path,
    started: list[Child],
    redis_url: str,
    scenarios: Sequence[Scenario] = ALL,
) -> tuple[Subject, list[Subject]]:
    """The direct simulator and every gateway asked for, attached and checked (with one
    request of each of `scenarios`)."""
    direct = start_simulator(logdir, started)
    teams = write_teams_file(logdir)
    gateways = [
        start_gateway(f"gw-{w}w", w, direct.base, redis_url, teams, logdir, started)
        for w in workers
    ]
    gateways += [
        start_gateway(f"gw-{v}-1w", 1, direct.base, redis_url, teams, logdir, started, VARIANTS[v])
        for v in variants
    ]
    attach(direct, scenarios)
    for gw in gateways:
        gw.child.wait_http(f"http://{HOST}:{gw.port}/healthz", {})
        attach(gw, scenarios)
    return direct, gateways


def attach(subject: Subject, scenarios: Sequence[Scenario] = ALL, timeout_s: float = 30.0) -> None:
    """Find the processes holding the subject's listening socket, then check each scenario
    (only those to be measured: an older revision in an A/B run may not serve the others)."""
    deadline = time.monotonic() + timeout_s
    owners = serving_pids(subject.child, subject.port)
    while len(owners) < subject.processes and time.monotonic() < deadline:
        time.sleep(0.2)
        owners = serving_pids(subject.child, subject.port)
    if not owners:
        raise SetupError(f"{subject.name}: no process holds the listening socket {subject.port}")
    if len(owners) < subject.processes:
        print(f"!! {subject.name}: only {len(owners)} of {subject.processes} processes came up")
    print(f"{subject.name}: pids {owners} hold :{subject.port} (measured, CPU and RSS summed)")
    subject.pids = owners
    check_answers(subject, scenarios)


def check_answers(subject: Subject, scenarios: Sequence[Scenario] = ALL) -> None:
    """One request per scenario, checked properly (wrk only counts status codes)."""
    for scenario in scenarios:
        body = subject.body(scenario)
        if body is None:
            continue
        name = f"{subject.name} {scenario.name}"
        req = urllib.request.Request(
            subject.base + scenario.path,
            data=body.encode(),
            headers={"Content-Type": "application/json", "Authorization": subject.auth},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            raise SetupError(f"{name}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        subject.requests += 1
        if status != 200:
            raise SetupError(f"{name}: HTTP {status}")
        streamed = json.loads(body).get("stream", False)
        read = responses_text if scenario.path == RESPONSES else chat_text
        try:
            text = read(raw, streamed)
        except ValueError as exc:  # json.JSONDecodeError is one
            raise SetupError(f"{name}: {exc}") from None
        if not text:
            raise SetupError(f"{name}: empty answer: {raw[:300]!r}")
        if subject.kind != "gateway":
            continue
        # The full pipeline ran: routing picked a model, patches were applied where needed.
        gw = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-gateway-")}
        if "x-gateway-upstream-ms" not in gw and not streamed:
            raise SetupError(f"{name}: no x-gateway-upstream-ms header ({gw})")
        if scenario.name == "o1-fake-stream" and not gw.get("x-gateway-patched"):
            raise SetupError(f"{name}: o1-mini was not patched (headers {gw})")
        if scenario.name != "o1-fake-stream" and not any("route" in k for k in gw):
            raise SetupError(f"{name}: model auto was not routed (headers {gw})")
        if scenario.path == RESPONSES and gw.get("x-gateway-route-model") != "gpt-4o":
            # gpt-4o's upstream serves the Responses API: forwarded, not translated.
            raise SetupError(f"{name}: model auto was not routed to gpt-4o (headers {gw})")


# -- LiteLLM --------------------------------------------------------------------------------------


def ensure_litellm(venv: Path, spec: str) -> Path:
    """LiteLLM's proxy in its own virtual environment (created and installed when missing),
    never in the project's."""
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
    script = "import importlib.metadata as m;print(m.version('litellm'))"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip() or "?"


def start_litellm(binary: Path, sim_base: str, logdir: Path, started: list[Child]) -> Subject:
    """LiteLLM proxy, one worker, no database, master key auth, on the same simulator."""
    config = logdir / "litellm.yaml"
    model = {
        "model_name": "gpt-4o",
        "litellm_params": {
            "model": "openai/gpt-4o-2024-08-06",
            "api_base": sim_base,
            "api_key": SIM_KEY,
        },
    }
    settings = {
        "model_list": [model],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False},
    }
    config.write_text(json.dumps(settings, indent=2))
    port = free_port()
    env = clean_env(LITELLM_LOG="ERROR", LITELLM_LOCAL_MODEL_COST_MAP="True")
    for name in ("PYTHONPATH", "DATABASE_URL", "VIRTUAL_ENV"):
        env.pop(name, None)
    env["PATH"] = os.pathsep.join([str(binary.parent), env.get("PATH", "")])
    argv = [str(binary), "--config", str(config), "--host", HOST, "--port", str(port)]
    child = Child("litellm", [*argv, "--num_workers", "1"], env, logdir)
    started.append(child)
    child.wait_http(f"http://{HOST}:{port}/health/liveliness", {}, timeout_s=180)
    base = f"http://{HOST}:{port}/v1"
    subject = Subject("litellm-1w", "litellm", base, child, port, f"Bearer {LITELLM_KEY}", [])
    attach(subject)
    return subject
