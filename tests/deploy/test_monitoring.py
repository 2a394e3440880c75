"""A real Prometheus (Debian package) scrapes a gateway under a short load: every dashboard
query returns data, and the totals match what the requests did, to the micro-dollar. It
scrapes the API port with the metrics key (the metrics port is the CLI's, tested in
tests/server/cli/test_main.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.admission.pricing import cost_micros, worst_case_micros
from gateway.wire.tokens import count_messages
from gateway.wire.usage import Usage, usage_from
from tests.conftest import METRICS_KEY, ROOT, GatewayFactory, ServerThread, base_config, free_port
from tests.server.admin.test_api import ADMIN_KEY

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="needs Debian's prometheus (tests/run.sh installs it)",
)
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "o1-gateway.json"
BUSY_KEY = "sk-gw-monitoring-busy-0123456789"
TINY_KEY = "sk-gw-monitoring-tiny-0123456789"
# Panels whose series only exist once such an event happened; the load cannot cause them:
# fallbacks need fallback models configured, adaptive patches a stale capability table.
EVENT_ONLY = (
    "gateway_upstream_fallbacks_total",
    "gateway_adaptive_patches_total",
    "gateway_model_substitutions_total",  # tests/server/routing/test_lineups.py counts them
    "gateway_tool_calls_total",  # tests/redis/endpoints/test_hosted_tools.py counts them
)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Prometheus on a free port; yields its URL and the scrape config to fill in."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config.write_text(
        f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: o1-gateway
    file_sd_configs: [{{files: ["{targets}"], refresh_interval: 1s}}]
    authorization: {{credentials: "{METRICS_KEY}"}}
"""
    )
    proc = subprocess.Popen(
        [
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield url, targets
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def scalar(url: str, expr: str) -> float:
    result = query(url, expr)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace('"$team"', '".*"')
            queries.append((f"{panel['id']} {panel['title']}", expr))
    return queries


def test_prometheus_sees_every_panel_and_exact_totals(
    start_gateway: GatewayFactory,
    redis_server: str,
    prometheus: tuple[str, Path],
    tmp_path: Path,
) -> None:
    prom_url, targets = prometheus
    teams = tmp_path / "teams.yaml"
    teams.write_text(
        f"""
teams:
  - name: busy
    tier: tier-5
    budget_usd: 250
    keys: [{{name: load, sha256: {digest(BUSY_KEY)}}}]
  - name: tiny
    tier: tier-5
    limits: {{requests_per_minute: 2}}
    keys: [{{name: load, sha256: {digest(TINY_KEY)}}}]
"""
    )
    gateway: ServerThread = start_gateway(
        server={"admin_key": ADMIN_KEY},
        redis={"url": redis_server},
        admission={"teams_file": str(teams)},
        upstream={"forward_header_prefixes": ("x-sim-",)},
    )
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{gateway.port}"]}]))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=BUSY_KEY, max_retries=0)
    config = base_config()
    usages: list[tuple[str, Usage]] = []
    hello = [{"role": "user", "content": "Say hello to the monitoring test."}]
    requests = 0

    for _ in range(5):
        completion = client.chat.completions.create(model="gpt-4o", messages=hello)  # type: ignore[arg-type]
        usages.append(("gpt-4o", usage_from(completion.usage.model_dump())))  # type: ignore[union-attr,arg-type]
        requests += 1
    cache_me = [{"role": "user", "content": "Say hello to the response cache."}]
    for _ in range(2):  # a miss, then a hit: charged once (hits are free)
        cached = client.chat.completions.create(
            model="gpt-4o", messages=cache_me, extra_headers={"x-gateway-cache": "on"}
        )  # type: ignore[call-overload]
        requests += 1
    usages.append(("gpt-4o", usage_from(cached.usage.model_dump())))  # type: ignore[union-attr,arg-type]
    for model in ("gpt-4o", "o1-mini"):  # a real stream, and a faked one for o1-mini
        stream = client.chat.completions.create(
            model=model, messages=hello, stream=True, stream_options={"include_usage": True}
        )  # type: ignore[call-overload]
        last = [chunk for chunk in stream][-1]
        usages.append((model, usage_from(last.usage.model_dump())))
        requests += 1
    hard = [{"role": "user", "content": (
        "Prove that for every prime p > 3, p^2 - 1 is divisible by 24, and find all integers n "
        "such that n^2 + 2n + 12 is a perfect square."
    )}]  # fmt: skip
    routed = client.chat.completions.with_raw_response.create(model="auto", messages=hard)  # type: ignore[arg-type]
    routed_model = routed.headers["x-gateway-route-model"]
    usages.append((routed_model, usage_from(routed.parse().usage.model_dump())))  # type: ignore[union-attr,arg-type]
    requests += 1
    patched = [{"role": "system", "content": "Be brief."}, *hello]
    completion = client.chat.completions.create(model="o1-preview", messages=patched, max_tokens=50)  # type: ignore[arg-type]
    usages.append(("o1-preview", usage_from(completion.usage.model_dump())))  # type: ignore[union-attr,arg-type]
    requests += 1
    embedding = client.embeddings.create(model="text-embedding-3-small", input="monitor me")
    usages.append(("text-embedding-3-small", usage_from(embedding.usage.model_dump())))  # type: ignore[arg-type]
    requests += 1
    with pytest.raises(openai.APIError):  # upstream drops the connection mid-body: a 502
        client.with_options(default_headers={"x-sim-fault": "reset"}).chat.completions.create(
            model="gpt-4o",
            messages=hello,  # type: ignore[arg-type]
        )
    requests += 1
    # Generated but cut off, its usage never came: charged its hold, the prompt as estimated.
    cut_prompt = count_messages(hello)
    cut_cost = worst_case_micros(config.models["gpt-4o"].price, cut_prompt, 16_384)
    tiny = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=TINY_KEY, max_retries=0)
    refused = 0
    for _ in range(4):
        try:
            completion = tiny.chat.completions.create(model="gpt-4o", messages=hello)  # type: ignore[arg-type]
            usages.append(("gpt-4o-tiny", usage_from(completion.usage.model_dump())))  # type: ignore[union-attr,arg-type]
        except openai.RateLimitError:
            refused += 1
        requests += 1
    assert refused == 2
    # An admin action, and a wrong admin key, for the admin panels.
    for key, status in (("adm-wrong-0123456789-0123456789-0123", 401), (ADMIN_KEY, 201)):
        answer = httpx.post(
            f"{gateway.url}/admin/teams",
            json={"name": "audited", "tier": "tier-1"},
            headers={"authorization": f"Bearer {key}"},
        )
        assert answer.status_code == status

    # Expected totals, computed here from the usage each response reported.
    prices = {name: model.price for name, model in config.models.items()}
    busy = [(m, u) for m, u in usages if m != "gpt-4o-tiny"]
    busy_spend = sum(cost_micros(prices[m], u) for m, u in busy) + cut_cost
    all_spend = busy_spend + sum(
        cost_micros(prices["gpt-4o"], u) for m, u in usages if m == "gpt-4o-tiny"
    )
    tokens = {
        "prompt": sum(u.prompt_tokens for _, u in usages) + cut_prompt,
        "completion": sum(u.completion_tokens for _, u in usages),
        "reasoning": sum(u.reasoning_tokens for _, u in usages),
        "cached": sum(u.cached_tokens for _, u in usages),
    }

    # Wait until Prometheus has scraped the gateway after the last request.
    deadline = time.monotonic() + 30
    while True:
        found = query(prom_url, "sum(gateway_requests_total)")
        if found and float(found[0]["value"][1]) == requests:
            spend = query(prom_url, "sum(gateway_spend_microdollars_total)")
            if spend and float(spend[0]["value"][1]) == all_spend:
                break
        assert time.monotonic() < deadline, f"scraped {found}, expected {requests} requests"
        time.sleep(0.5)
    time.sleep(2.5)  # a few more samples, so rate() over the load has points on both sides

    assert scalar(prom_url, 'sum(gateway_spend_microdollars_total{team="busy"})') == busy_spend
    embedded = sum(cost_micros(prices[m], u) for m, u in usages if m == "text-embedding-3-small")
    by_endpoint = {"embeddings": embedded, "chat": all_spend - embedded}
    for endpoint, value in by_endpoint.items():
        found = scalar(prom_url, f'sum(gateway_spend_microdollars_total{{endpoint="{endpoint}"}})')
        assert found == value, endpoint
    for kind, value in tokens.items():
        assert scalar(prom_url, f'sum(gateway_tokens_total{{kind="{kind}"}})') == value, kind
    assert tokens["reasoning"] > 0
    # The same money, read from Redis by the scrape: what admission settled.
    assert scalar(prom_url, 'gateway_budget_spent_microdollars{team="busy"}') == busy_spend
    assert scalar(prom_url, 'gateway_budget_limit_microdollars{team="busy"}') == 250_000_000
    assert scalar(prom_url, 'gateway_budget_remaining_microdollars{team="busy"}') == (
        250_000_000 - busy_spend
    )
    assert scalar(prom_url, 'sum(gateway_ratelimit_refusals_total{kind="requests"})') == 2
    assert scalar(prom_url, 'sum(gateway_requests_total{status_class="5xx"})') == 1
    assert scalar(prom_url, "sum(gateway_upstream_errors_total)") == 1
    assert scalar(prom_url, "sum(gateway_route_decisions_total)") == 1
    assert scalar(prom_url, 'sum(gateway_patches_total{kind="system_message"})') >= 1
    assert scalar(prom_url, 'sum(gateway_patches_total{kind="fake_stream"})') == 1
    assert scalar(prom_url, "gateway_redis_up") == 1
    assert scalar(prom_url, 'gateway_admin_actions_total{action="team.create"}') == 1
    assert scalar(prom_url, 'gateway_admin_actions_total{outcome="denied"}') == 1

    empty = []
    for name, expr in panel_queries():
        if any(metric in expr for metric in EVENT_ONLY):
            continue
        if not query(prom_url, expr):
            empty.append(f"{name}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    rules = httpx.get(f"{prom_url}/api/v1/rules").json()["data"]["groups"]
    assert sum(len(group["rules"]) for group in rules) >= 6  # the shipped alert rules load
