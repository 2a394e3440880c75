"""What a team learns from upstream's errors through a running gateway: every team shares the
gateway's upstream key, and upstream words its refusals for that key's owner (the organization's
id and usage across every team, the key's head and tail). The SDKs still read the status, `type`
and `code` upstream gave."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread, scrape

HELLO = [{"role": "user", "content": "Hello there"}]
# The simulator takes only SIM_KEY: a gateway configured with this one is refused upstream.
WRONG_UPSTREAM_KEY = "sk-proj-operatorsecret0123abcd"


def chat(server: ServerThread, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {CLIENT_KEY}", **headers},
    )


@pytest.mark.parametrize(
    ("fault", "type_", "code"),
    [
        ("429", "requests", "rate_limit_exceeded"),
        ("429-tokens", "tokens", "rate_limit_exceeded"),
        ("quota", "insufficient_quota", "insufficient_quota"),
    ],
)
def test_an_upstream_429_names_neither_the_organization_nor_its_usage(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture,
    fault: str, type_: str, code: str,
) -> None:  # fmt: skip
    server = start_gateway(upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0})
    answer = chat(server, **{"x-sim-fault": fault, "x-sim-retry-after": "1.2"})
    error = answer.json()["error"]
    assert (answer.status_code, error["type"], error["code"]) == (429, type_, code)
    message = error["message"]
    for leak in ("org-", "organization", "Limit ", "Used ", "Requested ", "billing"):
        assert leak not in message
    if code == "rate_limit_exceeded":
        assert message.endswith("which every team of this gateway shares, was reached. "
                                "Please try again in 1.2s.")  # fmt: skip
        assert answer.headers["retry-after-ms"] == "1200"  # the SDKs' wait, as upstream said it
    else:
        assert "operator" in message
    # The operator has upstream's own words, and a count.
    said = "in organization org-simulated" if code == "rate_limit_exceeded" else "billing details"
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway"]
    heard = [line for line in logged if line.startswith("upstream default answered team ")]
    assert len(heard) == 1 and f" with 429 {code}: " in heard[0] and said in heard[0]
    assert 'gateway_upstream_errors_total{code="upstream_429"} 1.0' in scrape(server.url)


def test_an_upstream_401_quotes_no_part_of_the_gateways_key(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_gateway(upstream={"api_key": WRONG_UPSTREAM_KEY, "retries": 0})
    answer = chat(server)
    error = answer.json()["error"]
    assert (answer.status_code, error["type"], error["code"]) == (
        401, "invalid_request_error", "invalid_api_key",
    )  # fmt: skip
    assert "sk-" not in error["message"] and WRONG_UPSTREAM_KEY[-2:] not in error["message"]
    assert "gateway's own credentials" in error["message"]
    # The team is told to report it; the operator sees it counted.
    assert 'gateway_upstream_errors_total{code="upstream_401"} 1.0' in scrape(server.url)
    # Upstream's words are logged, but for the key they quote.
    heard = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upstream ")]
    assert len(heard) == 1 and "answered team test with 401 invalid_api_key: " in heard[0]
    assert "Incorrect API key provided: [key]" in heard[0] and "sk-" not in heard[0]


@pytest.mark.parametrize("metered", [True, False])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_a_stream_upstream_ends_on_the_accounts_quota_names_no_billing(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, path: str, metered: bool
) -> None:
    # Without admission no meter reads the stream: its events are told as the chunks hold them.
    server = start_gateway(
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0},
        admission={"enabled": metered},
    )
    body: dict[str, object] = {"model": "gpt-4o", "stream": True}
    body.update({"messages": HELLO} if path.endswith("completions") else {"input": "Hello there"})
    answer = httpx.post(
        f"{server.url}{path}", json=body,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-sim-fault": "stream-quota"},
    )  # fmt: skip
    failures = [
        event for line in answer.text.splitlines() if line.startswith("data: ")
        for event in [json.loads(line[6:])]
        if event.get("error") or event.get("type") == "response.failed"
    ]  # fmt: skip
    # Chat: the error object; Responses: the error event, then response.failed carrying it.
    assert len(failures) == (1 if path.endswith("completions") else 2)
    for event in failures:
        error = event.get("error") or event["response"]["error"]
        assert error["code"] == "insufficient_quota"
        assert error["message"].startswith("The gateway's upstream account cannot serve")
        assert "billing" not in error["message"]
    heard = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upstream ")]
    assert len(heard) == len(failures)  # the operator reads upstream's words
    assert all("with an error insufficient_quota: 'You exceeded" in line for line in heard)


def test_a_failed_background_response_names_neither_the_organization_nor_its_usage(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_gateway(upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0})
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)
    queued = client.responses.create(
        model="gpt-4o", input="Hello there", background=True,
        extra_headers={"x-sim-background": "failed"},
    )  # fmt: skip
    polled = [client.responses.retrieve(queued.id) for _ in range(3)]
    assert polled[-1].status == "failed"
    seen = [
        polled[-1].error,
        client.responses.cancel(queued.id).error,  # a finished response is answered as it is
        list(client.responses.retrieve(queued.id, stream=True))[-1].response.error,
    ]
    for error in seen:
        assert error is not None and error.code == "rate_limit_exceeded"
        for leak in ("org-", "organization", "Limit ", "Used ", "Requested "):
            assert leak not in error.message
        assert error.message.endswith("which every team of this gateway shares, was reached. "
                                      "Please try again in 1.4s.")  # fmt: skip
    # Each time, the operator's log has upstream's words.
    heard = [r.getMessage() for r in caplog.records if r.getMessage().startswith("upstream ")]
    assert len(heard) == [r.status for r in polled].count("failed") + 2  # the cancel, the stream
    assert all(
        "with an error rate_limit_exceeded: 'Rate limit reached for gpt-4o" in h for h in heard
    )
