"""`model: "auto"` end to end: the router picks the model, admission and patching follow it."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread

WRITING = [
    {
        "role": "user",
        "content": "Write a short, warm thank-you note to my neighbour for watering my plants.",
    }
]
CODING = [{"role": "user", "content": (
    "Implement an LRU cache class in Python with get and put in O(1) time, using a dict and a "
    "doubly linked list. Include type hints and explain the eviction logic."
)}]  # fmt: skip
PHYSICS = [{"role": "user", "content": (
    "A spin-1/2 particle in a uniform magnetic field B along z starts in the +x eigenstate. "
    "Using the Heisenberg picture, derive the expectation value of the spin operator S_x(t), "
    "and compute the Larmor precession frequency for an electron in a 1.5 T field "
    "(gyromagnetic ratio 1.76e11 rad/(s*T))."
)}]  # fmt: skip


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> ServerThread:
    return start_gateway()


def sdk(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.mark.parametrize(
    ("alias", "messages", "model", "served"),
    [
        ("auto", WRITING, "gpt-4o", "gpt-4o-2024-08-06"),
        ("auto", CODING, "o1-mini", "o1-mini-2024-09-12"),
        ("auto", PHYSICS, "o1-preview", "o1-preview-2024-09-12"),
        ("auto-cheap", PHYSICS, "o1-mini", "o1-mini-2024-09-12"),
    ],
)
def test_auto_routes_by_difficulty_and_says_why(
    gateway: ServerThread, alias: str, messages: list[dict[str, str]], model: str, served: str
) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(model=alias, messages=messages)  # type: ignore[arg-type]
    completion = raw.parse()
    assert raw.headers["x-gateway-route-model"] == model
    assert 0 <= float(raw.headers["x-gateway-route-score"]) <= 1
    assert raw.headers["x-gateway-route-reason"]
    assert completion.model == served  # the real upstream model, as OpenAI returns it


def test_routed_o1_requests_are_patched_like_pinned_ones(gateway: ServerThread) -> None:
    messages = [{"role": "system", "content": "Answer tersely."}, *CODING]
    chunks = list(
        sdk(gateway).chat.completions.create(model="auto", messages=messages, stream=True)
    )  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].model == "o1-mini-2024-09-12"


def test_images_under_auto_go_to_a_model_that_can_see(gateway: ServerThread) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Prove this lemma."}, image]}]
    raw = sdk(gateway).chat.completions.with_raw_response.create(model="auto", messages=messages)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-route-model"] == "gpt-4o"
    assert "images" in raw.headers["x-gateway-route-reason"]
    assert raw.parse().model == "gpt-4o-2024-08-06"
