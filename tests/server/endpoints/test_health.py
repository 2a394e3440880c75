"""Who may read /metrics, which names every team with its budget and spend: nobody on the API
port by default, the metrics key's holder when one is set. (The metrics port, a listener of
its own, is tested where the CLI starts it: tests/server/cli/test_main.py.)"""

from __future__ import annotations

import httpx

from tests.conftest import CLIENT_KEY, METRICS_KEY, GatewayFactory, ServerThread


def metrics_answer(server: ServerThread, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.get(f"{server.url}/metrics", headers=headers)


def test_without_a_metrics_key_or_port_metrics_are_served_to_nobody(
    start_gateway: GatewayFactory,
) -> None:
    server = start_gateway(server={"metrics_key": ""})
    for key in (None, CLIENT_KEY, METRICS_KEY):
        answer = metrics_answer(server, key)
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert error["code"] == "unknown_url"
        assert "GATEWAY_METRICS_KEY" in error["message"] and "metrics_port" in error["message"]
        assert "gateway_" not in answer.text


def test_on_the_api_port_metrics_need_the_metrics_key(gateway: ServerThread) -> None:
    missing = metrics_answer(gateway)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_metrics_key"
    for wrong in (CLIENT_KEY, METRICS_KEY + "x"):  # a team's key is not the metrics key
        answer = metrics_answer(gateway, wrong)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_metrics_key"
        assert "team=" not in answer.text
    served = metrics_answer(gateway, METRICS_KEY)
    assert served.status_code == 200
    assert 'gateway_budget_spent_microdollars{team="test"}' in served.text
