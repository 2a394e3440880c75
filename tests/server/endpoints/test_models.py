"""`GET /v1/models`: a team's models and the routing aliases that reach one of them, so model
pickers can offer `auto`; a team whose tier reaches none of an alias's models is not shown it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openai
import pytest

from tests.conftest import CLIENT_KEY, GatewayFactory, ServerThread

FREE_KEY = "sk-gw-free-0123456789abcdef"


@pytest.fixture
def gateway(start_gateway: GatewayFactory, tmp_path: Path) -> ServerThread:
    teams = tmp_path / "teams.yaml"
    teams.write_text(
        "teams:\n"
        "  - name: big\n    tier: tier-5\n"
        f"    keys: [{{name: k, sha256: {hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}}}]\n"
        "  - name: small\n    tier: free\n"
        f"    keys: [{{name: k, sha256: {hashlib.sha256(FREE_KEY.encode()).hexdigest()}}}]\n"
    )
    return start_gateway(admission={"teams_file": str(teams)})


def sdk(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_the_routing_aliases_are_listed_and_retrievable(gateway: ServerThread) -> None:
    client = sdk(gateway, CLIENT_KEY)
    names = [m.id for m in client.models.list()]
    assert {"auto", "auto-cheap", "auto-best"} <= set(names)
    assert {"gpt-4o", "o1-mini", "o1-preview"} <= set(names)
    assert client.models.retrieve("auto").id == "auto"


def test_a_tier_reaching_none_of_an_alias_models_is_not_offered_it(gateway: ServerThread) -> None:
    client = sdk(gateway, FREE_KEY)
    names = {m.id for m in client.models.list()}
    assert "gpt-4o-mini" in names
    assert not names & {"auto", "auto-cheap", "auto-best", "o1-preview"}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("auto")


def test_each_model_says_its_shutdown_date_as_openai_does(gateway: ServerThread) -> None:
    """OpenAI's model objects carry `shutdown_date` (YYYY-MM-DD, or null): the SDK's
    `Model.shutdown_date`, which a client checks for a model going away."""
    client = sdk(gateway, CLIENT_KEY)
    listed = {m.id: m for m in client.models.list()}
    assert listed["o1-preview"].shutdown_date == "2025-07-28"
    assert listed["gpt-4o"].shutdown_date == "2027-01-14"
    assert client.models.retrieve("o1-mini").shutdown_date == "2025-10-27"
    # By the dated snapshot a client pins, as chat completions serves it.
    pinned = client.models.retrieve("gpt-4o-2024-08-06")
    assert (pinned.id, pinned.shutdown_date) == ("gpt-4o-2024-08-06", "2027-01-14")
    assert listed["auto"].shutdown_date is None
    assert "shutdown_date" in listed["auto"].model_fields_set  # said, as null
