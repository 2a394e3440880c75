"""End to end: the official openai SDK, with a W3C `traceparent`, through a traced gateway to the
simulated upstream, the spans exported over OTLP/HTTP to a receiver on a real socket here."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread
from tests.server.observability.conftest import Receiver, Span

PROMPT = "Tell the gateway about the aubergine-lantern-4471."
SERVER, CLIENT = 2, 3  # OTLP's span kinds (INTERNAL is 1)
ERROR = 2  # OTLP's status code


def traced(
    start_gateway: GatewayFactory, receiver: ServerThread, capture: bool = False, **sections: Any
) -> ServerThread:
    return start_gateway(
        observability={"otlp_endpoint": receiver.url, "otel_capture_content": capture},
        **sections,
    )


def traceparent() -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent}-01", trace_id, parent


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def sim_log(simulator: ServerThread) -> list[dict[str, Any]]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


def server_span(spans: list[Span]) -> Span:
    (found,) = [span for span in spans if span.kind == SERVER]
    return found


def calls(gateway: ServerThread) -> dict[str, tuple[str, str]]:
    """One call of each kind, each with its own client trace: name -> (trace id, parent)."""
    client = sdk(gateway)
    made: dict[str, tuple[str, str]] = {}
    header, trace_id, parent = traceparent()
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], max_completion_tokens=300,
        extra_headers={"traceparent": header, "tracestate": "vendor=kept"},
    )  # fmt: skip
    made["chat"] = trace_id, parent
    header, trace_id, parent = traceparent()
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], stream=True,
        extra_headers={"traceparent": header},
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    made["stream"] = trace_id, parent
    header, trace_id, parent = traceparent()
    client.responses.create(model="gpt-4o", input=PROMPT, extra_headers={"traceparent": header})
    made["responses"] = trace_id, parent
    header, trace_id, parent = traceparent()
    client.embeddings.create(
        model="text-embedding-3-small", input=PROMPT, extra_headers={"traceparent": header}
    )
    made["embeddings"] = trace_id, parent
    header, trace_id, parent = traceparent()
    client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": header},
    )  # fmt: skip
    made["routed"] = trace_id, parent
    return made


@pytest.fixture
def traced_gateway(
    start_gateway: GatewayFactory, receiver: tuple[ServerThread, Receiver]
) -> tuple[ServerThread, Receiver]:
    """A gateway exporting its spans to the receiver, content capture off."""
    return traced(start_gateway, receiver[0]), receiver[1]


def test_spans_follow_the_genai_conventions_and_continue_the_callers_trace(
    traced_gateway: tuple[ServerThread, Receiver], simulator: ServerThread
) -> None:
    gateway, found = traced_gateway
    made = calls(gateway)
    gateway.__exit__()  # the lifespan's end flushes the spans
    upstream_calls = sim_log(simulator)
    assert found.content_types == {"application/json"}

    for kind, (trace_id, parent) in made.items():
        spans = found.trace(trace_id)
        request = server_span(spans)
        assert request.parent == parent, kind  # the caller's trace, continued
        assert request.service == "o1-gateway"
        attributes = request.attributes
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.system"] == "openai"
        assert attributes["http.request.method"] == "POST"
        assert attributes["http.response.status_code"] == 200
        assert attributes["gateway.team"] == "test"
        assert attributes["gateway.cost_micros"] > 0
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert request.status != ERROR
        children = [span for span in spans if span.parent == request.span_id]
        assert len(spans) == 3, kind  # the request's, and its two children
        (reserve,) = [span for span in children if span.name == "gateway.admission.reserve"]
        assert reserve.attributes["gateway.admission.admitted"] is True, kind
        assert attributes["gateway.settle.outcome"] == "settled", kind
        (upstream,) = [span for span in children if span.kind == CLIENT]
        assert upstream.attributes["http.response.status_code"] == 200
        assert upstream.attributes["gen_ai.provider.name"] == "openai"
        # The upstream call carries the gateway's client span as its parent.
        sent = [
            call for call in upstream_calls
            if call["headers"].get("traceparent", "").split("-")[1:2] == [trace_id]
        ]  # fmt: skip
        assert len(sent) == 1, kind
        assert sent[0]["headers"]["traceparent"].split("-")[2] == upstream.span_id

    chat = server_span(found.trace(made["chat"][0]))
    assert chat.name == "chat gpt-4o"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["openai.api.type"] == "chat_completions"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o"
    assert chat.attributes["gen_ai.request.max_tokens"] == 300
    assert chat.attributes["gen_ai.response.model"].startswith("gpt-4o")
    assert chat.attributes["gen_ai.response.id"].startswith("chatcmpl")
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    (upstream,) = [s for s in found.trace(made["chat"][0]) if s.kind == CLIENT]
    assert upstream.name == "chat gpt-4o-2024-08-06"  # the model upstream is asked for
    assert upstream.attributes["gen_ai.request.model"] == "gpt-4o-2024-08-06"
    sent = next(c for c in upstream_calls if made["chat"][0] in c["headers"].get("traceparent", ""))
    assert sent["headers"]["tracestate"] == "vendor=kept"

    stream = server_span(found.trace(made["stream"][0]))
    assert stream.attributes["gen_ai.request.stream"] is True
    assert stream.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert stream.attributes["gen_ai.response.id"].startswith("chatcmpl")
    assert stream.attributes["gen_ai.usage.output_tokens"] > 0  # known when the stream ended
    assert "gen_ai.response.time_to_first_chunk" in stream.attributes

    responses = server_span(found.trace(made["responses"][0]))
    assert responses.name == "chat gpt-4o"
    assert responses.attributes["openai.api.type"] == "responses"
    assert responses.attributes["gen_ai.response.id"].startswith("resp_")

    embeddings = server_span(found.trace(made["embeddings"][0]))
    assert embeddings.name == "embeddings text-embedding-3-small"
    assert embeddings.attributes["gen_ai.operation.name"] == "embeddings"

    routed = server_span(found.trace(made["routed"][0]))
    assert routed.attributes["gen_ai.request.model"] == "auto"
    assert routed.attributes["gateway.route.policy"] == "auto"
    assert routed.attributes["gateway.route.reason"]
    assert routed.attributes["gateway.routed_model"] in ("gpt-4o", "o1-mini", "o1-preview")

    # No prompt, answer or key in any attribute of any span, by default.
    everything = repr([span.attributes for span in found.spans])
    assert "aubergine-lantern" not in everything
    assert CLIENT_KEY not in everything and "sk-simulated" not in everything


def test_content_is_captured_only_when_turned_on(
    start_gateway: GatewayFactory, receiver: tuple[ServerThread, Receiver]
) -> None:
    endpoint, found = receiver
    gateway = traced(start_gateway, endpoint, capture=True)
    made = calls(gateway)
    gateway.__exit__()
    chat = server_span(found.trace(made["chat"][0]))
    assert "aubergine-lantern" in chat.attributes["gen_ai.input.messages"]
    assert '"role":"assistant"' in chat.attributes["gen_ai.output.messages"]
    stream = server_span(found.trace(made["stream"][0]))
    assert '"finish_reason":"stop"' in stream.attributes["gen_ai.output.messages"]
    responses = server_span(found.trace(made["responses"][0]))
    assert "aubergine-lantern" in responses.attributes["gen_ai.input.messages"]
    assert "gen_ai.output.messages" in responses.attributes
    everything = repr([span.attributes for span in found.spans])
    assert CLIENT_KEY not in everything and "sk-simulated" not in everything


def test_failures_mark_the_spans(
    start_gateway: GatewayFactory, receiver: tuple[ServerThread, Receiver]
) -> None:
    endpoint, found = receiver
    gateway = traced(
        start_gateway, endpoint,
        upstream={"forward_header_prefixes": ("x-sim-",), "retries": 0},
    )  # fmt: skip
    client = sdk(gateway)
    header, failed, _ = traceparent()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"traceparent": header, "x-sim-fault": "500"},
        )  # fmt: skip
    header, refused, _ = traceparent()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"traceparent": header},
        )  # fmt: skip
    gateway.__exit__()

    spans = found.trace(failed)
    request = server_span(spans)
    assert request.status == ERROR
    assert request.attributes["error.type"] == "500"
    (upstream,) = [span for span in spans if span.kind == CLIENT]
    assert upstream.status == ERROR and upstream.attributes["http.response.status_code"] == 500
    assert request.attributes["gateway.settle.outcome"] == "released"

    # A caller's mistake is answered, not a failure of the gateway's (HTTP server spans).
    request = server_span(found.trace(refused))
    assert request.status != ERROR
    assert request.attributes["http.response.status_code"] == 404
    assert request.attributes["gateway.error.code"] == "model_not_found"


def test_a_callers_unsampled_trace_is_passed_on_untraced(
    traced_gateway: tuple[ServerThread, Receiver], simulator: ServerThread
) -> None:
    gateway, found = traced_gateway
    _, trace_id, parent = traceparent()
    header = f"00-{trace_id}-{parent}-00"  # the caller decided against recording it
    sdk(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": header},
    )  # fmt: skip
    header_sampled, sampled, _ = traceparent()
    sdk(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": header_sampled},
    )  # fmt: skip
    gateway.__exit__()
    assert found.trace(trace_id) == []
    assert len(found.trace(sampled)) == 3  # the request, its reserve and upstream call
    sent = [c["headers"].get("traceparent") for c in sim_log(simulator)]
    assert header in sent  # as it came


def test_tracing_off_forwards_the_callers_trace_context(
    start_gateway: GatewayFactory, simulator: ServerThread
) -> None:
    gateway = start_gateway()
    header, _, _ = traceparent()
    sdk(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": header, "tracestate": "vendor=kept"},
    )  # fmt: skip
    (call,) = [c for c in sim_log(simulator) if c["headers"].get("traceparent") == header]
    assert call["headers"]["tracestate"] == "vendor=kept"
