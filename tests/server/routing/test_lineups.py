"""Line-ups and the retirement shield, end to end: the `openai` SDK through the gateway to the
simulator set to a day (`x-sim-today`), whose request log shows what reached upstream."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import (
    CLIENT_KEY,
    SIM_KEY,
    GatewayFactory,
    ServerThread,
    base_config,
    scrape,
)

TODAY = "2026-12-05"
DAY = {"x-sim-today": TODAY}
SCIENCE = (
    "A 2.0 kg block slides down a 30 degree incline with kinetic friction coefficient 0.25. "
    "Using Newton's laws, find its acceleration and the thermal energy released over 4.0 m, "
    "then the entropy change of the surroundings at 300 K."
)
CHAT = "Write a warm two-line thank-you note to my neighbour for watering the plants."
MATH = "Find all positive integers n such that n^2 + 2n + 7 is divisible by n + 1."
HI: Any = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def gateway_on(start_gateway: GatewayFactory, simulator: ServerThread, **env: str) -> ServerThread:
    settings = {
        "OPENAI_BASE_URL": f"{simulator.url}/v1",
        "OPENAI_API_KEY": SIM_KEY,
        "O1GW__UPSTREAM__FORWARD_HEADER_PREFIXES": "x-sim-",
        "O1GW__UPSTREAM__RETRIES": "0",
        "O1GW__RETIREMENT__TODAY": TODAY,
    }
    config = base_config(**{**settings, **env})
    return start_gateway(config)


def with_model(
    start_gateway: GatewayFactory, simulator: ServerThread, day: str, name: str, **changes: Any
) -> ServerThread:
    """A gateway judging retirements by `day`, its model `name` configured with `changes`."""
    config = base_config(
        OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY,
        O1GW__UPSTREAM__FORWARD_HEADER_PREFIXES="x-sim-", O1GW__UPSTREAM__RETRIES="0",
        O1GW__RETIREMENT__TODAY=day,
    )  # fmt: skip
    models = {**config.models, name: dataclasses.replace(config.models[name], **changes)}
    return start_gateway(dataclasses.replace(config, models=models))


@pytest.fixture
def today(start_gateway: GatewayFactory, simulator: ServerThread) -> ServerThread:
    """A gateway routing to today's line-up, on the simulator's 2026-12-05."""
    return gateway_on(start_gateway, simulator, O1GW__ROUTING__LINEUP="openai-2026-12")


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0, default_headers=DAY
    )


def upstream(simulator: ServerThread) -> dict[str, Any]:
    """The body of the last request the simulator received."""
    body: dict[str, Any] = httpx.get(f"{simulator.url}/_sim/requests").json()["data"][-1]["body"]
    return body


def ask(server: ServerThread, prompt: str, **params: Any) -> Any:
    return sdk(server).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}], **params
    )


def test_the_current_line_up_routes_to_its_models_at_the_effort_chosen(
    today: ServerThread, simulator: ServerThread
) -> None:
    for prompt, model, efforts in (
        (CHAT, "gpt-6-luna", {"none"}),
        (MATH, "gpt-6.1-sol", {"low", "medium", "high"}),
        (SCIENCE, "gpt-6.2-astra", {"medium", "high", "xhigh"}),
    ):
        raw = ask(today, prompt)
        completion = raw.parse()
        effort = raw.headers["x-gateway-route-effort"]
        assert raw.headers["x-gateway-route-model"] == model, raw.headers["x-gateway-route-reason"]
        assert effort in efforts
        assert raw.headers["x-gateway-route-reason"].endswith(
            "effort none" if effort == "none" else "]"
        )
        sent = upstream(simulator)
        assert (sent["model"], sent["reasoning_effort"]) == (model, effort)
        assert completion.model.startswith(model)
        assert completion.choices[0].message.content


def test_a_clients_own_effort_wins_and_is_fitted_to_the_model(
    today: ServerThread, simulator: ServerThread
) -> None:
    raw = ask(today, SCIENCE, reasoning_effort="minimal")
    assert raw.headers["x-gateway-route-model"] == "gpt-6.2-astra"
    assert raw.parse().choices[0].message.content
    # gpt-6.2-astra refuses `minimal`: the nearest effort it takes goes instead.
    assert upstream(simulator)["reasoning_effort"] == "low"
    assert "reasoning_effort" in raw.headers["x-gateway-patched"].split(",")


def test_the_line_ups_models_are_patched_for_what_they_lack(
    today: ServerThread, simulator: ServerThread
) -> None:
    # gpt-6.1-sol takes no tools on Chat Completions and no sampling parameters or max_tokens.
    raw = ask(
        today, MATH, tools=[WEATHER], temperature=0.3, max_tokens=400,
        extra_headers={"x-sim-answer-b64": base64.b64encode(b"n = 5 and n = 1").decode()},
    )  # fmt: skip
    assert raw.headers["x-gateway-route-model"] == "gpt-6.1-sol"
    assert raw.parse().choices[0].message.content == "n = 5 and n = 1"
    patched = set(raw.headers["x-gateway-patched"].split(","))
    assert {"tools", "temperature", "max_tokens"} <= patched
    sent = upstream(simulator)
    assert "tools" not in sent and "temperature" not in sent and "max_tokens" not in sent
    assert sent["max_completion_tokens"] >= 400


def test_at_effort_none_max_tokens_stays_the_clients_cap(
    today: ServerThread, simulator: ServerThread
) -> None:
    # gpt-6-luna, asked for effort none, does not reason: the room made for reasoning tokens
    # would only let the answer run (and be billed) past the client's cap.
    raw = ask(today, CHAT, max_tokens=30)
    assert (raw.headers["x-gateway-route-model"], raw.headers["x-gateway-route-effort"]) == (
        "gpt-6-luna", "none",
    )  # fmt: skip
    completion = raw.parse()
    sent = upstream(simulator)
    assert (sent["max_completion_tokens"], sent["reasoning_effort"]) == (30, "none")
    assert "max_tokens" in raw.headers["x-gateway-patched"].split(",")
    assert completion.usage is not None and completion.usage.completion_tokens <= 30
    # A reasoning effort keeps the room: reasoning tokens come out of the same budget.
    ask(today, CHAT, max_tokens=30, reasoning_effort="low")
    assert upstream(simulator)["max_completion_tokens"] == 4096


def test_the_responses_api_carries_the_effort_chosen(
    today: ServerThread, simulator: ServerThread
) -> None:
    raw = sdk(today).responses.with_raw_response.create(model="auto", input=SCIENCE)
    response = raw.parse()
    assert raw.headers["x-gateway-route-model"] == "gpt-6.2-astra"
    effort = raw.headers["x-gateway-route-effort"]
    sent = upstream(simulator)
    assert (sent["model"], sent["reasoning"]["effort"]) == ("gpt-6.2-astra", effort)
    assert response.output_text
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens


def test_a_retired_model_is_served_by_its_successor(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    gateway = gateway_on(start_gateway, simulator)
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="o1-preview", messages=[{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": SCIENCE}],
        temperature=0.5,
    )  # fmt: skip
    assert raw.headers["x-gateway-model-substituted"] == "o1-preview -> gpt-6.2-astra"
    completion = raw.parse()
    assert completion.model.startswith("gpt-6.2-astra")
    sent = upstream(simulator)
    assert sent["model"] == "gpt-6.2-astra"
    # Patched for the successor: it takes the system message, not the temperature.
    assert sent["messages"][0]["role"] == "system" and "temperature" not in sent
    metrics = scrape(gateway.url)
    assert (
        'gateway_model_substitutions_total{model="o1-preview",successor="gpt-6.2-astra"} 1.0'
        in (metrics)
    )
    # Each model's day, for the alert on models still requested near it (2025-07-28 00:00 UTC).
    assert (
        'gateway_model_shutdown_timestamp_seconds{model="o1-preview",successor="gpt-6.2-astra"}'
        " 1.7536608e+09" in metrics
    )
    # A retired model nothing replaces is refused before upstream.
    httpx.delete(f"{simulator.url}/_sim/requests")  # it keeps the session's last 200 only
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway).images.generate(model="dall-e-3", prompt="a lighthouse")
    assert info.value.code == "model_not_found"
    assert "shut down on 2026-05-12" in info.value.message
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == []


def test_a_model_that_does_not_reason_is_served_by_its_successor_at_effort_none(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # gpt-4o shut down on 2027-01-14: gpt-6-luna serves it, asked not to reason, as gpt-4o
    # did not. At its own default effort it would be given room for reasoning, and the client's
    # max_tokens would no longer bound the answer it is billed for.
    day = "2027-02-01"
    gateway = gateway_on(start_gateway, simulator, O1GW__RETIREMENT__TODAY=day)
    client = sdk(gateway).with_options(default_headers={"x-sim-today": day})
    essay = [{"role": "user", "content": "Write a long essay about the sea and its storms."}]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=essay, max_tokens=20, temperature=0.2
    )
    assert raw.headers["x-gateway-model-substituted"] == "gpt-4o -> gpt-6-luna"
    sent = upstream(simulator)
    assert (sent["model"], sent["reasoning_effort"], sent["max_completion_tokens"]) == (
        "gpt-6-luna", "none", 20,
    )  # fmt: skip
    assert sent["temperature"] == 0.2  # which gpt-6-luna takes only at effort none
    usage = raw.parse().usage
    assert usage is not None and usage.completion_tokens <= 20
    # The Responses API asks the same.
    client.responses.create(model="gpt-4o-mini", input="Hi", max_output_tokens=20)
    assert upstream(simulator)["reasoning"] == {"effort": "none"}
    # A client's own effort stands.
    client.chat.completions.create(model="gpt-4o", messages=essay, reasoning_effort="low")
    assert upstream(simulator)["reasoning_effort"] == "low"
    # A model that reasons is served at its successor's own default, as before.
    client.chat.completions.create(model="o1-preview", messages=essay)
    assert "reasoning_effort" not in upstream(simulator)
    answer = httpx.post(
        f"{gateway.url}/v1/route", json={"model": "gpt-4o", "messages": essay},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ).json()  # fmt: skip
    assert (answer["substituted"], answer["effort"]) == ("gpt-4o -> gpt-6-luna", "none")


def test_without_the_shield_upstream_refuses_a_retired_model(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    gateway = gateway_on(start_gateway, simulator, O1GW__RETIREMENT__SHIELD="false")
    with pytest.raises(openai.NotFoundError) as info:
        sdk(gateway).chat.completions.create(
            model="o1-preview", messages=[{"role": "user", "content": "Hi"}]
        )
    assert info.value.code == "model_not_found"
    assert upstream(simulator)["model"] == "o1-preview-2024-09-12"  # it went upstream as named


def test_before_its_day_a_model_is_served_as_named(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    gateway = gateway_on(start_gateway, simulator, O1GW__RETIREMENT__TODAY="2025-07-27")
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="o1-preview",
        messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"x-sim-today": "2025-07-27"},
    )
    assert "x-gateway-model-substituted" not in raw.headers
    assert raw.parse().model == "o1-preview-2024-09-12"


def test_the_route_endpoint_names_the_successor_that_would_serve(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    gateway = gateway_on(start_gateway, simulator)
    httpx.delete(f"{simulator.url}/_sim/requests")  # it keeps the session's last 200 only
    answer = httpx.post(
        f"{gateway.url}/v1/route",
        json={"model": "o1-preview", "messages": [{"role": "user", "content": SCIENCE}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ).json()
    assert answer["substituted"] == "o1-preview -> gpt-6.2-astra"
    assert answer["upstream_model"] == "gpt-6.2-astra"
    # Its cost is estimated at the successor's prices and output cap, as it would be charged.
    astra = httpx.post(
        f"{gateway.url}/v1/route",
        json={"model": "gpt-6.2-astra", "messages": [{"role": "user", "content": SCIENCE}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ).json()["estimates"]["gpt-6.2-astra"]
    assert answer["estimates"] == {"o1-preview": astra}
    # A policy whose line-up names shut-down models: each estimated on the model serving it.
    routed = httpx.post(
        f"{gateway.url}/v1/route",
        json={"model": "auto", "messages": [{"role": "user", "content": SCIENCE}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ).json()
    assert routed["estimates"]["o1-preview"] == astra
    assert routed["estimates"]["o1-mini"]["max_completion_tokens"] == 128_000  # gpt-6.1-sol's
    # Named by its upstream snapshot, as chat completions serves it.
    snapshot = httpx.post(
        f"{gateway.url}/v1/route",
        json={"model": "o1-preview-2024-09-12", "messages": [{"role": "user", "content": SCIENCE}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert snapshot.status_code == 200, snapshot.text
    assert snapshot.json()["substituted"] == "o1-preview -> gpt-6.2-astra"
    assert snapshot.json()["estimates"] == {"o1-preview": astra}
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == []
    # A decision is not a request served by the successor: nothing counted.
    assert "gateway_model_substitutions_total{" not in scrape(gateway.url)


def test_the_route_endpoint_estimates_the_cap_chat_sends_upstream(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # A max_tokens a reasoning model refuses goes upstream as max_completion_tokens with room
    # to reason: held, and maybe billed, so. The worst case estimated is that one.
    def route(server: ServerThread, model: str) -> Any:
        return httpx.post(
            f"{server.url}/v1/route", json={"model": model, "messages": HI, "max_tokens": 20},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        ).json()  # fmt: skip

    gateway = gateway_on(start_gateway, simulator)
    estimated = route(gateway, "o1-preview")["estimates"]["o1-preview"]["max_completion_tokens"]
    sdk(gateway).chat.completions.create(model="o1-preview", messages=HI, max_tokens=20)
    assert estimated == upstream(simulator)["max_completion_tokens"] == 4096
    # gpt-6-luna standing in for gpt-4o at effort none keeps the client's cap.
    day = "2027-02-01"
    later = gateway_on(start_gateway, simulator, O1GW__RETIREMENT__TODAY=day)
    estimated = route(later, "gpt-4o")["estimates"]["gpt-4o"]["max_completion_tokens"]
    sdk(later).with_options(default_headers={"x-sim-today": day}).chat.completions.create(
        model="gpt-4o", messages=HI, max_tokens=20
    )
    assert estimated == upstream(simulator)["max_completion_tokens"] == 20
    # So does the line-up's general model, played at effort none; its reasoning models do not.
    current = gateway_on(start_gateway, simulator, O1GW__ROUTING__LINEUP="openai-2026-12")
    caps = {m: e["max_completion_tokens"] for m, e in route(current, "auto")["estimates"].items()}
    assert caps == {"gpt-6-luna": 20, "gpt-6.1-sol": 4096, "gpt-6.2-astra": 4096}


def test_a_fallback_shut_down_is_served_by_its_successor(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # An operator's fallback written before o1-mini's shutdown (gpt-6.1-sol serves it now).
    gateway = with_model(
        start_gateway, simulator, TODAY, "gpt-6.2-astra",
        fallbacks=("o1-mini", "gpt-3.5-turbo-instruct"),
    )  # fmt: skip
    log = f"{simulator.url}/_sim/requests"
    httpx.delete(log)  # it keeps the session's last 200 requests: counting them stops at 200
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(gateway).chat.completions.create(
            model="gpt-6.2-astra", messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-sim-fault": "429"},
        )  # fmt: skip
    sent = [r["body"]["model"] for r in httpx.get(log).json()["data"]]
    # Nothing went upstream under a shut-down name; gpt-3.5-turbo-instruct, shut down with no
    # successor, was not tried.
    assert sent == ["gpt-6.2-astra", "gpt-6.1-sol"]
    assert refused.value.response.headers["x-gateway-fallback"] == (
        "gpt-6.2-astra -> gpt-6.1-sol (429)"
    )


def test_a_shut_down_model_named_keeps_its_own_fallbacks(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # o1-preview falls back to o1-mini (shipped config); gpt-6.2-astra, serving o1-preview
    # since its shutdown, has a fallback of its own.
    gateway = with_model(
        start_gateway, simulator, TODAY, "gpt-6.2-astra", fallbacks=("gpt-6-luna",)
    )
    log = f"{simulator.url}/_sim/requests"
    client = sdk(gateway).with_options(default_headers={"x-sim-fault": "429"})
    for named, sent, fell_back in (
        # o1-preview's fallback o1-mini, served by its successor gpt-6.1-sol.
        ("o1-preview", ["gpt-6.2-astra", "gpt-6.1-sol"], "gpt-6.2-astra -> gpt-6.1-sol (429)"),
        # Named itself, the successor falls back as configured for it.
        ("gpt-6.2-astra", ["gpt-6.2-astra", "gpt-6-luna"], "gpt-6.2-astra -> gpt-6-luna (429)"),
    ):
        httpx.delete(log)  # it keeps the session's last 200 requests: counting them stops at 200
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=named, messages=HI)
        assert [r["body"]["model"] for r in httpx.get(log).json()["data"]] == sent
        assert refused.value.response.headers["x-gateway-fallback"] == fell_back
    # The Responses API falls back as chat does.
    httpx.delete(log)  # it keeps the session's last 200 requests: counting them stops at 200
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model="o1-preview", input="Hi")
    assert [r["body"]["model"] for r in httpx.get(log).json()["data"]] == [
        "gpt-6.2-astra", "gpt-6.1-sol"
    ]  # fmt: skip
    assert refused.value.response.headers["x-gateway-model-substituted"] == (
        "o1-preview -> gpt-6.2-astra"
    )


def test_a_model_nothing_serves_is_not_listed_once_shut_down(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # DALL-E, gpt-image-1 and gpt-3.5-turbo-instruct are shut down with no successor: every
    # request naming them is refused, so no model picker is offered them (as OpenAI's list
    # does not). o1-preview, shut down too, is still served, by gpt-6.2-astra.
    gone = {"dall-e-2", "dall-e-3", "gpt-image-1", "gpt-3.5-turbo-instruct"}
    client = sdk(gateway_on(start_gateway, simulator))
    listed = {m.id for m in client.models.list()}
    assert not gone & listed
    assert "o1-preview" in listed
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("dall-e-3")
    assert client.models.retrieve("o1-preview").id == "o1-preview"
    # Without the shield they go upstream as named: listed as configured.
    unshielded = sdk(gateway_on(start_gateway, simulator, O1GW__RETIREMENT__SHIELD="false"))
    assert gone <= {m.id for m in unshielded.models.list()}
    # Nothing is substituted either: each still says its day, and no successor serving it.
    for model in (unshielded.models.retrieve("o1-preview"), *unshielded.models.list()):
        said = model.model_dump()
        if model.id == "o1-preview":
            assert (said["shutdown"], said["successor"]) == ("2025-07-28", None)
        assert said.get("successor") is None


def test_a_shut_down_fallback_that_did_not_reason_is_served_at_effort_none(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # An operator's model still served, falling back to gpt-4o (gpt-6-luna serves it now).
    gateway = with_model(
        start_gateway, simulator, "2027-02-01", "gpt-4o-mini",
        shutdown="", successor="", fallbacks=("gpt-4o",),
    )  # fmt: skip
    log = f"{simulator.url}/_sim/requests"
    httpx.delete(log)  # it keeps the session's last 200 requests: counting them stops at 200
    with pytest.raises(openai.RateLimitError):
        sdk(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=20,
            extra_headers={"x-sim-fault": "429", "x-sim-today": "2027-01-13"},
        )  # fmt: skip
    sent = [r["body"] for r in httpx.get(log).json()["data"]]
    assert [b["model"] for b in sent] == ["gpt-4o-mini-2024-07-18", "gpt-6-luna"]
    # As the model it stands in for, asked not to reason: the client's cap holds.
    assert (sent[1]["reasoning_effort"], sent[1]["max_completion_tokens"]) == ("none", 20)


def test_the_models_list_names_the_successor_serving_today(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    # gpt-6.1-sol, o1-mini's successor, shut down in its turn: gpt-6.2-astra serves them both.
    gateway = gateway_on(
        start_gateway, simulator,
        **{"O1GW__MODELS__GPT-6.1-SOL__SHUTDOWN": "2026-12-01",
           "O1GW__MODELS__GPT-6.1-SOL__SUCCESSOR": "gpt-6.2-astra"},
    )  # fmt: skip
    client = sdk(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="o1-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.headers["x-gateway-model-substituted"] == "o1-mini -> gpt-6.2-astra"
    o1_mini = client.models.retrieve("o1-mini").model_dump()
    assert (o1_mini["shutdown"], o1_mini["successor"]) == ("2025-10-27", "gpt-6.2-astra")
    listed = {m.id: m.model_dump() for m in client.models.list()}
    assert listed["o1-mini"]["successor"] == listed["gpt-6.1-sol"]["successor"] == "gpt-6.2-astra"
    # One still to come names the model serving it from its day, as before.
    assert listed["gpt-4o"]["successor"] == "gpt-6-luna"
