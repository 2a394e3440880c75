"""The official openai Node SDK against the gateway's Responses API, plain and streamed.

`node/responses.mjs` makes one `client.responses.create` call and one with `stream: true`, and
prints what the SDK parsed as JSON. The SDK version is pinned by `node/package-lock.json`;
`npm ci` installs it once per session when `node/node_modules` is missing (so it needs the npm
registry the first time). `tests/run.sh` installs node and npm where they are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with the SDK installed in NODE_DIR."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed (tests/run.sh installs them)")
    if not (NODE_DIR / "node_modules" / "openai" / "package.json").exists():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    return node


def sdk_version() -> str:
    package = NODE_DIR / "node_modules" / "openai" / "package.json"
    version: str = json.loads(package.read_text())["version"]
    return version


def run_script(node: str, gateway: ServerThread, model: str) -> dict[str, Any]:
    done = subprocess.run(
        [node, "responses.mjs", f"{gateway.url}/v1", CLIENT_KEY, model],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def check_usage(usage: dict[str, Any], reasoning: bool) -> None:
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert 0 <= usage["input_tokens_details"]["cached_tokens"] <= usage["input_tokens"]
    reasoning_tokens = usage["output_tokens_details"]["reasoning_tokens"]
    if reasoning:
        # o1 bills its hidden reasoning as output; the visible answer is the rest.
        assert 0 < reasoning_tokens < usage["output_tokens"]
    else:
        assert reasoning_tokens == 0


def check_response(response: dict[str, Any], model: str) -> None:
    assert response["id"].startswith("resp_")
    assert (response["object"], response["status"]) == ("response", "completed")
    assert response["model"].startswith(model + "-")  # the upstream snapshot, as OpenAI answers
    assert "message" in response["output_types"]
    assert response["output_text"].strip()
    check_usage(response["usage"], reasoning=model.startswith("o1"))


@pytest.mark.parametrize("model", ["gpt-4o", "o1-mini"])
def test_node_sdk_plain_and_streamed(node: str, start_gateway: GatewayFactory, model: str) -> None:
    assert sdk_version().split(".")[0] == "6"  # what package-lock.json pins
    result = run_script(node, start_gateway(), model)

    check_response(result["plain"], model)

    stream = result["stream"]
    events = stream["events"]
    types = [event["type"] for event in events]
    assert types[0] == "response.created" and events[0]["sequence_number"] == 0
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert types[-1] == "response.completed"
    assert types.count("response.completed") == 1
    assert "response.output_text.delta" in types
    assert types.index("response.output_text.delta") < types.index("response.output_text.done")
    completed = stream["completed"]
    check_response(completed, model)
    # The deltas add up to the text of the completed response.
    assert stream["deltas"] == completed["output_text"]
    assert completed["id"] != result["plain"]["id"]
