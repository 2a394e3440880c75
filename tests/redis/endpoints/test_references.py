"""Ids a request names, wherever it names them, are the caller's team's or never reach upstream,
on a real redis-server with the simulated upstream: a field name spelled with JSON escapes is
the field it spells."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import AllowedPath
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.endpoints.teams import key_of, sdk, serve_teams

TEAMS: dict[str, dict[str, str]] = {"a": {"tier": "tier-5"}, "b": {"tier": "tier-5"}}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, knobs=False)


def upstream_requests(simulator: ServerThread) -> list[Any]:
    return list(httpx.get(f"{simulator.url}/_sim/requests").json()["data"])


def post(gateway: ServerThread, team: str, path: str, raw: str) -> httpx.Response:
    """A body as the caller spells it, byte for byte."""
    headers = {"Authorization": f"Bearer {key_of(team)}", "Content-Type": "application/json"}
    return httpx.post(f"{gateway.url}/v1{path}", content=raw.encode(), headers=headers)


def escaped(name: str) -> str:
    """A field name as JSON may spell it: every `_` as `\\u005f`."""
    return name.replace("_", "\\u005f")


def test_a_field_name_spelled_with_escapes_names_the_same_object(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    b = sdk(gateway, "b")
    secret = b.files.create(file=("notes.txt", b"b's secret notes"), purpose="user_data").id
    rows = [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    training = b.files.create(file=("t.jsonl", io.BytesIO(data)), purpose="fine-tune").id
    store = b.vector_stores.create(name="b's", file_ids=[secret]).id
    file_id, file_ids = escaped("file_id"), escaped("file_ids")
    attacks = [
        ("/chat/completions", f'{{"model": "gpt-4o", "messages": [{{"role": "user", "content": '
         f'[{{"type": "file", "file": {{"{file_id}": "{secret}"}}}}]}}]}}', secret),
        ("/responses", f'{{"model": "gpt-4o", "input": [{{"role": "user", "content": '
         f'[{{"type": "input_file", "{file_id}": "{secret}"}}]}}]}}', secret),
        ("/responses", f'{{"model": "gpt-4o", "input": "Search.", "tools": [{{"type": '
         f'"file_search", "{escaped("vector_store_ids")}": ["{store}"]}}]}}', store),
        ("/embeddings", f'{{"model": "text-embedding-3-small", "input": "x", '
         f'"{file_id}": "{secret}"}}', secret),
        ("/vector_stores", f'{{"name": "mine", "{file_ids}": ["{secret}"]}}', secret),
        ("/fine_tuning/jobs", f'{{"model": "gpt-4o-mini", '
         f'"{escaped("training_file")}": "{training}"}}', training),
    ]  # fmt: skip
    before = upstream_requests(simulator)
    for path, raw, named in attacks:
        answer = post(gateway, "a", path, raw)
        assert answer.status_code == 404, (path, answer.text)
        kind = "VectorStore" if named == store else "File"
        assert answer.json()["error"]["message"] == f"No such {kind} object: {named}", path
    assert upstream_requests(simulator) == before  # none reached upstream
    # The owner's own escaped names still work.
    mine = post(gateway, "b", "/vector_stores", f'{{"name": "b2", "{file_ids}": ["{secret}"]}}')
    assert mine.status_code == 200, mine.text


OPENED = (
    AllowedPath("GET", "/v1/vector_stores/{vector_store_id}/files", "free"),
    AllowedPath("POST", "/v1/evals", "free"),
    AllowedPath("GET", "/v1/containers", "free"),
    AllowedPath("POST", "/v1/threads/{thread_id}/runs", "usage"),
)


def test_an_operator_allowed_path_reaches_no_other_teams_object(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    b = sdk(gateway, "b")
    secret = b.files.create(file=("notes.txt", b"b's secret notes"), purpose="user_data").id
    store = b.vector_stores.create(name="b's", file_ids=[secret]).id
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    source = {"type": "jsonl", "source": {"type": "file_id", "id": secret}}
    before = upstream_requests(simulator)
    # Its path, its query and its body, however they name the object.
    in_path = httpx.get(f"{gateway.url}/v1/vector_stores/{store}/files", headers=auth)
    in_query = httpx.get(f"{gateway.url}/v1/containers?file={secret}", headers=auth)
    in_body = httpx.post(
        f"{gateway.url}/v1/evals", json={"name": "x", "data_source": source}, headers=auth
    )
    for answer, kind, named in (
        (in_path, "VectorStore", store), (in_query, "File", secret), (in_body, "File", secret)
    ):  # fmt: skip
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["message"] == f"No such {kind} object: {named}"
    # A model spelled with escapes is still the model it names: one the team may not use is
    # not served, and not free.
    escaped_model = post(gateway, "a", "/threads/thread_1/runs", '{"mod\\u0065l": "o1-pro-x"}')
    assert escaped_model.status_code == 404, escaped_model.text
    assert escaped_model.json()["error"]["code"] == "model_not_found"
    assert upstream_requests(simulator) == before  # none reached upstream
    # The owner's own reach upstream.
    own = httpx.get(
        f"{gateway.url}/v1/vector_stores/{store}/files",
        headers={"Authorization": f"Bearer {key_of('b')}"},
    )
    last = upstream_requests(simulator)[-1]
    assert (last["method"], last["path"]) == ("GET", f"/v1/vector_stores/{store}/files")
    assert own.status_code == 404  # the simulated upstream serves no such path
