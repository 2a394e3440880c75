"""Ids a request names, wherever it names them, are the caller's team's or never reach upstream,
on a real redis-server with the simulated upstream: a field name spelled with JSON escapes is
the field it spells."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.config import AllowedPath
from gateway.runtime.tuning_jobs import TuningJobs
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.endpoints.teams import follower_pass, key_of, sdk, serve_teams
from tests.redis.endpoints.test_fine_tuning import complete, training_file

TEAMS: dict[str, dict[str, str]] = {
    "a": {"tier": "tier-5"},
    "b": {"tier": "tier-5"},
    "mini": {"tier": "tier-5", "models": "[gpt-4o-mini]"},
}


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
    # A batch line names it so: the line is read as upstream will read it.
    part = f'{{"type": "file", "file": {{"{file_id}": "{secret}"}}}}'
    line = (f'{{"custom_id": "r", "method": "POST", "url": "/v1/chat/completions", "body": '
            f'{{"model": "gpt-4o", "messages": [{{"role": "user", "content": [{part}]}}]}}}}')  # fmt: skip
    a = sdk(gateway, "a")
    lines = a.files.create(file=("in.jsonl", line.encode()), purpose="batch").id
    with pytest.raises(openai.NotFoundError) as info:
        a.batches.create(
            input_file_id=lines, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert info.value.response.json()["error"]["message"] == f"No such File object: {secret}"
    # The owner's own escaped names still work.
    mine = post(gateway, "b", "/vector_stores", f'{{"name": "b2", "{file_ids}": ["{secret}"]}}')
    assert mine.status_code == 200, mine.text


OPENED = (
    AllowedPath("GET", "/v1/vector_stores/{vector_store_id}/files", "free"),
    AllowedPath("POST", "/v1/evals", "free"),
    AllowedPath("GET", "/v1/containers", "free"),
    AllowedPath("POST", "/v1/threads/{thread_id}/runs", "usage"),
    AllowedPath("POST", "/v1/uploads/{upload_id}/parts", "free"),
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


def test_another_teams_id_trimmed_or_listed_is_refused_too(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """An id with whitespace around it, or among others in a comma-separated list, is the id an
    endpoint that trims or splits would read: another team's is refused however it is wrapped,
    and a team's own list reaches upstream."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    own = sdk(gateway, "a").files.create(file=("mine.txt", b"a's"), purpose="user_data").id
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    before = upstream_requests(simulator)
    wrapped = (f" {secret}", f"{secret}\n", f"{own},{secret}", f"{own}, {secret} ")
    for value in wrapped:
        in_query = httpx.get(f"{gateway.url}/v1/containers", params={"file": value}, headers=auth)
        in_body = httpx.post(
            f"{gateway.url}/v1/evals", json={"name": "x", "file_ids": value}, headers=auth
        )
        for answer in (in_query, in_body):
            assert answer.status_code == 404, (value, answer.text)
            assert answer.json()["error"]["message"] == f"No such File object: {secret}"
    assert upstream_requests(simulator) == before  # none reached upstream
    # Prose that merely holds an id-like word is not a list of ids; a team's own list passes.
    for value in ("see file-abcdefgh, then more", f"{own}, {own}"):
        httpx.post(f"{gateway.url}/v1/evals", json={"name": "x", "note": value}, headers=auth)
        last = upstream_requests(simulator)[-1]
        assert (last["method"], last["path"]) == ("POST", "/v1/evals"), value


def opened_with_files(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path
) -> tuple[ServerThread, str, str]:
    """A gateway letting the `OPENED` paths through, a file of team b's and one of team a's."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    mine = sdk(gateway, "a").files.create(file=("notes.txt", b"a's"), purpose="user_data").id
    return gateway, secret, mine


def test_an_operator_allowed_form_reaches_no_other_teams_object(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A multipart form's text fields are read for ids as a JSON body's strings are (a field
    holding JSON too), and for the model it names; its files are not read, and it goes upstream
    as it came."""
    gateway, secret, mine = opened_with_files(start_gateway, redis_server, tmp_path)
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    parts = f"{gateway.url}/v1/uploads/upload_1/parts"
    before = upstream_requests(simulator)
    refused = [
        httpx.post(parts, data={"note": secret}, files={"data": b"x"}, headers=auth),
        httpx.post(parts, data={"meta": json.dumps({"of": [secret]})}, files={"data": b"x"},
                   headers=auth),
        # Given twice: each value is checked, whichever upstream's parser reads.
        httpx.post(parts, data={"note": [mine, secret]}, files={"data": b"x"},
                   headers=auth),
    ]  # fmt: skip
    for answer in refused:
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["message"] == f"No such File object: {secret}"
    runs = f"{gateway.url}/v1/threads/thread_1/runs"
    model = httpx.post(runs, data={"model": "o1-pro-x"}, files={"f": b"x"}, headers=auth)
    assert model.status_code == 404 and model.json()["error"]["code"] == "model_not_found"
    # Given twice, it names no model the gateway could check: which one upstream reads is its
    # parser's choice.
    twice = httpx.post(
        runs, data={"model": ["gpt-4o", "o1-pro-x"]}, files={"f": b"x"}, headers=auth
    )
    assert twice.status_code == 400, twice.text
    # Sent as a file part, it is a model upstream's parser may read, and none the gateway did.
    as_file = httpx.post(runs, files={"model": ("m.txt", b"o1-pro-x")}, headers=auth)
    assert as_file.status_code == 400, as_file.text
    assert upstream_requests(simulator) == before  # none reached upstream
    # A file's bytes are the caller's to send, whatever they say.
    sent = httpx.post(parts, files={"data": secret.encode()}, headers=auth)
    assert sent.status_code == 404  # the simulated upstream serves no such path
    last = upstream_requests(simulator)[-1]
    assert last["path"] == "/v1/uploads/upload_1/parts" and secret in last["raw"]


def test_an_operator_allowed_path_refuses_what_it_cannot_read_as_upstream_will(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A urlencoded form (whose fields the gateway does not read) and a query holding a `;` (a
    separator to some parsers, part of a value to others) are refused with a 400 before
    upstream, whatever they name."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    evals, runs = f"{gateway.url}/v1/evals", f"{gateway.url}/v1/threads/thread_1/runs"
    spelled = {**auth, "Content-Type": "Application/X-WWW-Form-Urlencoded; charset=utf-8"}
    before = upstream_requests(simulator)
    forms = [
        httpx.post(evals, data={"name": "x", "file_id": secret}, headers=auth),
        httpx.post(runs, data={"model": "o1-pro-x"}, headers=auth),
        httpx.post(runs, content=b"model=o1-pro-x", headers=spelled),
        # JSON text, but upstream is told it is a form.
        httpx.post(runs, content=b'{"model": "gpt-4o"}', headers=spelled),
    ]
    for answer in forms:
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "unsupported_form")
    for query in (f"limit=1;file={secret}", f"file={secret[:6]};{secret[6:]}", ";"):
        answer = httpx.get(f"{gateway.url}/v1/containers?{query}", headers=auth)
        assert answer.status_code == 400, (query, answer.text)
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "ambiguous_query")
    assert upstream_requests(simulator) == before  # none reached upstream
    # A `;` percent-encoded is one value to every parser; a form with no body says nothing.
    assert httpx.get(f"{gateway.url}/v1/containers?name=a%3Bb", headers=auth).status_code == 404
    assert upstream_requests(simulator)[-1]["path"] == "/v1/containers"
    empty = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
    assert httpx.post(evals, headers=empty).status_code == 404
    assert upstream_requests(simulator)[-1]["path"] == "/v1/evals"


def raw_form(parts: list[tuple[bytes, bytes]], boundary: bytes = b"XyZ") -> bytes:
    """A multipart body spelled byte for byte: each part's header lines, then its value."""
    body = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + value + b"\r\n"
                    for head, value in parts)  # fmt: skip
    return body + b"--" + boundary + b"--\r\n"


def test_an_operator_allowed_form_is_read_as_upstream_reads_it(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A form goes upstream as it came: a text field spelled the way some parsers read and
    others skip (an unquoted name, `filename` inside another parameter's name, a boundary inside
    a header, a second boundary parameter) is read as the field it is, and a form in any other
    shape is refused, never sent on unread."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    parts = f"{gateway.url}/v1/uploads/upload_1/parts"
    data = (b'Content-Disposition: form-data; name="data"; filename="d"', b"x")
    form_type = "multipart/form-data; boundary=XyZ"

    def send(head: bytes, content_type: str = form_type) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key_of('a')}", "Content-Type": content_type}
        body = raw_form([(head, secret.encode()), data])
        return httpx.post(parts, content=body, headers=headers)

    before = upstream_requests(simulator)
    for head, content_type in (
        (b"Content-Disposition: form-data; name=note", form_type),
        (b'Content-Disposition: form-data; name="note"; xfilename="a"', form_type),
        (b'Content-Disposition: form-data; name="note"; x="--XyZ"', form_type),
        (b'Content-Disposition: form-data; name="note"',
         "multipart/form-data; xboundary=AAA; boundary=XyZ"),
    ):  # fmt: skip
        answer = send(head, content_type)
        assert answer.status_code == 404, (head, content_type, answer.text)
        assert answer.json()["error"]["message"] == f"No such File object: {secret}"
    for head, content_type in (
        # Header lines ended by a bare LF: one parser's two headers, another's one.
        (b'Content-Disposition: form-data; name="x"\nContent-Disposition: form-data; '
         b'name="note"', form_type),
        (b'Content-Disposition: form-data; name="note"; name="x"', form_type),
        (b'Content-Disposition: form-data; name="note"',
         "multipart/form-data; boundary=AAA; boundary=XyZ"),
        (b'Content-Disposition: form-data; name="note"', "multipart/form-data"),
    ):  # fmt: skip
        answer = send(head, content_type)
        assert answer.status_code == 400, (head, content_type, answer.text)
        assert answer.json()["error"]["code"] == "invalid_multipart"
    assert upstream_requests(simulator) == before  # none reached upstream
    # A form as HTTP libraries send it still goes through.
    sent = httpx.post(
        parts, data={"note": "hello"}, files={"data": b"x"},
        headers={"Authorization": f"Bearer {key_of('a')}"},
    )  # fmt: skip
    assert sent.status_code == 404  # the simulated upstream serves no such path
    assert upstream_requests(simulator)[-1]["path"] == "/v1/uploads/upload_1/parts"


def test_an_operator_allowed_form_whose_text_a_parser_reads_decoded_is_refused(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """Another team's id base64-encoded (aiohttp decodes a part by its Content-Transfer-Encoding)
    or in UTF-16 (aiohttp reads a text field in its charset, Starlette in the form's) is text
    that names no id to the gateway's reader: refused, never sent upstream unchecked."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    parts = f"{gateway.url}/v1/uploads/upload_1/parts"
    data = (b'Content-Disposition: form-data; name="data"; filename="d"', b"x")
    note = b'Content-Disposition: form-data; name="note"'
    form_type = "multipart/form-data; boundary=XyZ"
    before = upstream_requests(simulator)
    for head, value, content_type in (
        (note + b"\r\nContent-Transfer-Encoding: base64", base64.b64encode(secret.encode()),
         form_type),
        (note + b"\r\nContent-Type: text/plain; charset=utf-16-le", secret.encode("utf-16-le"),
         form_type),
        (note, secret.encode("utf-16-le"), form_type + "; charset=utf-16-le"),
    ):  # fmt: skip
        headers = {"Authorization": f"Bearer {key_of('a')}", "Content-Type": content_type}
        answer = httpx.post(parts, content=raw_form([(head, value), data]), headers=headers)
        assert answer.status_code == 400, (head, answer.text)
        assert answer.json()["error"]["code"] == "invalid_multipart"
    assert upstream_requests(simulator) == before  # none reached upstream


def test_a_body_goes_upstream_with_the_content_type_it_was_read_by(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A request with two Content-Type headers is read by the first, as Starlette reads it, and
    upstream is told that one: never a second one that makes a form of what was read as text."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    parts = f"{gateway.url}/v1/uploads/upload_1/parts"
    form_type = "multipart/form-data; boundary=XyZ"

    def send(note: str, *types: str) -> httpx.Response:
        headers = [("Authorization", f"Bearer {key_of('a')}")]
        body = raw_form([(b'Content-Disposition: form-data; name="note"', note.encode())])
        return httpx.post(
            parts, content=body, headers=headers + [("Content-Type", t) for t in types]
        )

    before = upstream_requests(simulator)
    # Read as a form with another boundary: not a form of that shape.
    answer = send(secret, "multipart/form-data; boundary=AAA", form_type)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_multipart"
    # Read as text: searched whole for ids.
    answer = send(secret, "text/plain", form_type)
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == f"No such File object: {secret}"
    assert upstream_requests(simulator) == before
    # Text naming no id goes, and upstream is told it is text.
    assert send("hello", "text/plain", form_type).status_code == 404
    last = upstream_requests(simulator)[-1]
    assert last["path"] == "/v1/uploads/upload_1/parts"
    assert last["headers"]["content-type"] == "text/plain"


def test_a_body_of_another_media_type_names_no_other_teams_object(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A body that says it is text is not read as JSON, but upstream forgives a wrong
    Content-Type: JSON that a lenient parser reads and the gateway's cannot (`NaN`, `1e400`, a
    byte order mark, UTF-16) is refused before upstream, as is a form field of such JSON, and
    any other text body is searched whole for ids, another team's refused; text naming none
    (an SDP offer) goes as it came."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    evals = f"{gateway.url}/v1/evals"
    named = f'{{"name": "x", "data_source": {{"source": {{"type": "file_id", "id": "{secret}"}}}}'

    def send(body: bytes, content_type: str = "text/plain") -> httpx.Response:
        headers = {"Authorization": f"Bearer {key_of('a')}", "Content-Type": content_type}
        return httpx.post(evals, content=body, headers=headers)

    before = upstream_requests(simulator)
    for body, content_type in (
        ((named + ', "x": NaN}').encode(), "text/plain"),
        ((named + ', "x": 1e400}').encode(), "application/octet-stream"),
        (b"\xef\xbb\xbf" + (named + "}").encode(), "text/plain"),
        ((named + "}").encode("utf-16"), "text/plain; charset=utf-16"),
        (b"\n [" + (named + ', "x": Infinity}]').encode(), "application/x-ndjson"),
    ):
        answer = send(body, content_type)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_json"
    for text in (f"see {secret}.", f"a=1\r\nfile={secret}\r\n", f"x_id:{secret}"):
        answer = send(text.encode())
        assert answer.status_code == 404, (text, answer.text)
        assert answer.json()["error"]["message"] == f"No such File object: {secret}"
    # A form's text field likewise: JSON to a lenient reader is refused, not read as prose.
    parts = f"{gateway.url}/v1/uploads/upload_1/parts"
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    for meta in (f'{{"of": ["{secret}"], "x": NaN}}', f'["{secret}", 1e400]', f'["{secret}"] x'):
        answer = httpx.post(parts, data={"meta": meta}, files={"data": b"x"}, headers=auth)
        assert answer.status_code == 400, (meta, answer.text)
        assert answer.json()["error"]["code"] == "invalid_json"
    assert upstream_requests(simulator) == before  # none reached upstream
    note = httpx.post(parts, data={"meta": "[draft] notes"}, files={"data": b"x"}, headers=auth)
    assert note.status_code == 404  # no such path upstream
    assert upstream_requests(simulator)[-1]["path"] == "/v1/uploads/upload_1/parts"
    # Words that merely hold an id's prefix name none.
    offer = b"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=profile-x left:0\r\n"
    assert send(offer, "application/sdp").status_code == 404  # no such path upstream
    last = upstream_requests(simulator)[-1]
    assert last["path"] == "/v1/evals" and last["raw"] == offer.decode()
    assert last["headers"]["content-type"] == "application/sdp"


def test_an_object_no_team_owns_here_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """Containers, skills, tunnels, conversations and chat's previous audio answers are not
    recorded to any team: a request naming one by its id is refused, whoever sends it."""
    a = sdk(gateway, "a")
    shell: Any = {"type": "shell", "environment": {"type": "container_reference",
                                                   "container_id": "cntr_b"}}  # fmt: skip
    skills: Any = {"type": "shell", "environment": {
        "type": "container_auto", "skills": [{"type": "skill_reference", "skill_id": "skill_b"}]
    }}  # fmt: skip
    mcp: Any = {"type": "mcp", "server_label": "intranet", "tunnel_id": "tun_b"}
    refused: list[tuple[str, Callable[[], object]]] = [
        ("tools[0].container", lambda: a.responses.create(
            model="gpt-4o", input="Run it.",
            tools=[{"type": "code_interpreter", "container": "cntr_b"}],
        )),
        ("tools[1].container_id", lambda: a.responses.create(
            model="gpt-4o", input="Run it.", tools=[{"type": "web_search"}, shell]
        )),
        ("tools[0].skill_id", lambda: a.responses.create(
            model="gpt-4o", input="Run it.", tools=[skills]
        )),
        ("tools[0].tunnel_id", lambda: a.responses.create(
            model="gpt-4o", input="Ask it.", tools=[mcp]
        )),
        ("conversation", lambda: a.responses.create(
            model="gpt-4o", input="Go on.", conversation={"id": "conv_b"}
        )),
        ("messages[1].audio.id", lambda: a.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "Say it."},
            {"role": "assistant", "audio": {"id": "audio_b"}},
            {"role": "user", "content": "Again."},
        ])),
    ]  # fmt: skip
    before = upstream_requests(simulator)
    for param, call in refused:
        with pytest.raises(openai.BadRequestError) as info:
            call()
        assert (info.value.code, info.value.param) == ("unsupported_parameter", param)
    # A batch line naming one.
    line = {"custom_id": "r", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "gpt-4o", "messages": [{"role": "assistant", "audio": {"id": "audio_b"}}],
    }}  # fmt: skip
    lines = a.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch").id
    with pytest.raises(openai.BadRequestError) as info:
        a.batches.create(
            input_file_id=lines, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert "messages[0].audio.id" in info.value.message
    # Nothing but the batch's input file (read to check it) reached upstream.
    reached = [(r["method"], r["path"]) for r in upstream_requests(simulator) if r not in before]
    assert reached == [("POST", "/v1/files"), ("GET", f"/v1/files/{lines}/content")]


def test_a_response_compared_for_prompt_caching_is_the_teams_own(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    b = sdk(gateway, "b")
    theirs = b.responses.create(model="gpt-4o", input="Hi").id
    a = sdk(gateway, "a")
    compared = {"prompt_cache_options": {"comparison_response_id": theirs}}
    before = upstream_requests(simulator)
    with pytest.raises(openai.NotFoundError) as info:
        a.responses.create(model="gpt-4o", input="Hi", extra_body=compared)
    assert (
        info.value.response.json()["error"]["message"] == f"Response with id '{theirs}' not found."
    )
    assert upstream_requests(simulator) == before
    # The team's own is sent on (the simulated upstream predates the field and refuses it).
    with pytest.raises(openai.BadRequestError):
        b.responses.create(model="gpt-4o", input="Hi", extra_body=compared)
    assert (
        upstream_requests(simulator)[-1]["body"]["prompt_cache_options"]
        == compared["prompt_cache_options"]
    )


def item_not_found(call: Callable[[], object]) -> str:
    """The message of a call that must be upstream's 404 for an unknown input item."""
    with pytest.raises(openai.NotFoundError) as info:
        call()
    error = info.value.response.json()["error"]
    assert error["param"] == "input"
    return str(error["message"])


def test_a_team_gives_back_only_the_items_of_its_own_responses(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    b = sdk(gateway, "b")
    first = b.responses.create(model="gpt-4o", input="My secret is 4417.")
    said = first.output[0].id
    heard = b.responses.input_items.list(first.id).data[0].id  # ids upstream gave its input
    a = sdk(gateway, "a")
    after = {"role": "user", "content": "Repeat the above."}
    reference: Any = {"type": "item_reference", "id": said}
    again: Any = first.output[0].model_dump(exclude_none=True)
    approval: Any = {"type": "mcp_approval_response", "approval_request_id": "mcpr_b",
                     "approve": True}  # fmt: skip
    before = upstream_requests(simulator)
    for given, named in (
        ([reference, after], said),
        ([{"type": "item_reference", "id": heard}, after], heard),
        ([again, after], said),  # an output item given back whole, with its id
        ([approval, after], "mcpr_b"),
    ):
        message = item_not_found(lambda: a.responses.create(model="gpt-4o", input=given))  # noqa: B023
        assert message == (
            f"Item with id '{named}' not found. Items are not persisted when `store` is set to "
            "false. Try again with `store` set to true, or remove this item from your input."
        )
    assert upstream_requests(simulator) == before  # none reached upstream

    # The owner gives back what its responses said and were given, however it saw them: whole,
    # streamed, polled in the background, listed.
    assert b.responses.create(model="gpt-4o", input=[reference, after]).status == "completed"
    assert b.responses.create(model="gpt-4o", input=[again, after]).status == "completed"
    with b.responses.stream(model="gpt-4o", input="Count to three.") as stream:
        streamed = stream.get_final_response().output[0].id
    queued = b.responses.create(model="gpt-4o", input="Later.", background=True)
    while (polled := b.responses.retrieve(queued.id)).status != "completed":
        pass
    listed = heard
    for item in (streamed, polled.output[0].id, listed):
        given_back: Any = [{"type": "item_reference", "id": item}, after]
        assert b.responses.create(model="gpt-4o", input=given_back).status == "completed"
    # A response the gateway served by translation: its items are the team's too.
    translated = b.responses.create(model="o1-mini", input="Hi")
    kept: Any = [translated.output[-1].model_dump(exclude_none=True), after]
    assert b.responses.create(model="o1-mini", input=kept).status == "completed"
    item_not_found(lambda: a.responses.create(model="o1-mini", input=kept))


def test_an_operator_allowed_path_gives_back_only_the_items_of_the_teams_own_responses(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A path an operator opens that reads response items by id (counting a request's input
    tokens, a conversation's first items) reads another team's no more than `/v1/responses`
    does: upstream would count, compact or copy what b's response said for a."""
    opened = (
        AllowedPath("POST", "/v1/responses/input_tokens", "free"),
        AllowedPath("POST", "/v1/conversations", "free"),
    )
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": opened}
    )
    said = sdk(gateway, "b").responses.create(model="gpt-4o", input="My secret is 4417.")
    item = said.output[0].id
    reference = {"type": "item_reference", "id": item}
    before = upstream_requests(simulator)
    for path, body in (
        ("/v1/responses/input_tokens", {"model": "gpt-4o", "input": [reference]}),
        ("/v1/conversations", {"items": [reference]}),
        ("/v1/conversations", {"items": [said.output[0].model_dump(exclude_none=True)]}),
    ):
        answer = httpx.post(
            f"{gateway.url}{path}", json=body, headers={"Authorization": f"Bearer {key_of('a')}"}
        )
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["message"].startswith(f"Item with id '{item}' not found.")
    assert upstream_requests(simulator) == before  # none reached upstream
    # The owner's own reach upstream.
    httpx.post(
        f"{gateway.url}/v1/conversations", json={"items": [reference]},
        headers={"Authorization": f"Bearer {key_of('b')}"},
    )  # fmt: skip
    last = upstream_requests(simulator)[-1]
    assert (last["method"], last["path"]) == ("POST", "/v1/conversations")


def test_no_other_path_or_method_of_an_object_reaches_upstream(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    """Sub-paths and methods outside the endpoint table, on real objects, for their own team
    too: `404 unknown_url`, nothing sent upstream."""
    b = sdk(gateway, "b")
    file_id = b.files.create(file=("n.txt", b"n"), purpose="user_data").id
    store = b.vector_stores.create(name="s").id
    response = b.responses.create(model="gpt-4o", input="Hi").id
    chat = b.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}],
                                     store=True).id  # fmt: skip
    tried = [
        ("POST", f"/v1/files/{file_id}"), ("PUT", f"/v1/files/{file_id}"),
        ("POST", f"/v1/files/{file_id}/content"), ("PATCH", f"/v1/files/{file_id}"),
        ("GET", f"/v1/vector_stores/{store}/files"), ("POST", f"/v1/vector_stores/{store}/files"),
        ("POST", f"/v1/vector_stores/{store}/file_batches"),
        ("POST", f"/v1/vector_stores/{store}/search"),
        ("POST", f"/v1/responses/{response}"), ("POST", f"/v1/responses/{response}/compact"),
        ("GET", f"/v1/responses/{response}/input_items/x"), ("POST", "/v1/responses/compact"),
        ("POST", "/v1/responses/input_tokens"),
        ("GET", f"/v1/chat/completions/{chat}/messages/x"),
        ("PUT", f"/v1/chat/completions/{chat}"),
        ("DELETE", "/v1/batches/batch_x"), ("POST", "/v1/fine_tuning/jobs/ftjob-x/pause"),
        ("POST", "/v1/fine_tuning/checkpoints/ft:x:ckpt-step-1/permissions"),
        ("POST", "/v1/conversations"), ("POST", "/v1/containers"), ("POST", "/v1/uploads"),
        ("GET", "/v1/assistants"), ("POST", "/v1/threads/runs"),
    ]  # fmt: skip
    auth = {"Authorization": f"Bearer {key_of('b')}"}
    before = upstream_requests(simulator)
    for method, path in tried:
        answer = httpx.request(method, f"{gateway.url}{path}", headers=auth, json={})
        assert answer.status_code == 404, (method, path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unknown_url", (method, path)
        assert error["message"].startswith(f"Invalid URL ({method} {path})")
    assert upstream_requests(simulator) == before


def test_objects_a_body_names_over_and_over_are_looked_up_once(
    gateway: ServerThread, redis_server: str
) -> None:
    # One 9 MB body naming the team's own file 300,000 times took 300,000 Redis round trips
    # (69 s), before any limit was checked.
    import redis

    store = redis.Redis.from_url(redis_server)
    b = sdk(gateway, "b")
    mine = b.files.create(file=("notes.txt", b"b's notes"), purpose="user_data").id
    others = [b.files.create(file=(f"{i}.txt", b"x"), purpose="user_data").id for i in range(3)]

    def gets() -> int:
        return int(store.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    named = [mine] * 20_000 + others
    before = gets()
    body = {"model": "text-embedding-3-small", "input": "x", "file_ids": named}
    answer = post(gateway, "b", "/embeddings", json.dumps(body))
    assert answer.status_code == 200, answer.text
    assert gets() - before < 20  # each file once (and the key's lookup)
    # Another team's file among them is still the 404 it was, whichever place it has.
    theirs = sdk(gateway, "a").files.create(file=("a.txt", b"a"), purpose="user_data").id
    for ids in ([mine, theirs, *others], [*others, mine] * 300 + [theirs]):
        body = {"name": "n", "file_ids": ids}
        answer = post(gateway, "b", "/vector_stores", json.dumps(body))
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["message"] == f"No such File object: {theirs}"


def test_a_model_named_anywhere_in_a_passthrough_body_is_one_the_team_may_use(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """An eval's graders, an eval run's `data_source.model`, a model in a string holding JSON:
    each is run upstream as surely as a top-level `model`, which alone had been checked (and
    on an entry charging nothing, not even that)."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    auth = {"Authorization": f"Bearer {key_of('mini')}"}
    grader = {"type": "score_model", "name": "g", "input": [], "model": "o1-preview"}
    bodies = [
        ("/v1/evals", {"name": "x", "testing_criteria": [grader]}),
        ("/v1/evals", {"name": "x", "model": "o1-preview"}),
        ("/v1/threads/thread_1/runs",
         {"assistant_id": "asst_1", "data_source": {"type": "completions", "model": "o1-preview"}}),
        ("/v1/evals", {"name": "x", "item": json.dumps({"sampling": {"model": "o1-preview"}})}),
        ("/v1/evals", {"name": "x", "judge": {"grader_model": "o1-preview"}}),
    ]  # fmt: skip
    before = upstream_requests(simulator)
    for path, body in bodies:
        answer = httpx.post(f"{gateway.url}{path}", json=body, headers=auth)
        assert answer.status_code == 404, (body, answer.text)
        assert answer.json()["error"]["code"] == "model_not_found", body
    unreadable = httpx.post(
        f"{gateway.url}/v1/evals", json={"name": "x", "data_source": {"model": ["o1-preview"]}},
        headers=auth,
    )  # fmt: skip
    assert unreadable.status_code == 400, unreadable.text
    assert unreadable.json()["error"]["code"] == "invalid_type"
    assert upstream_requests(simulator) == before  # none reached upstream
    allowed = {**grader, "model": "gpt-4o-mini"}
    httpx.post(f"{gateway.url}/v1/evals", json={"testing_criteria": [allowed]}, headers=auth)
    assert upstream_requests(simulator)[-1]["path"] == "/v1/evals"


def test_a_model_the_config_does_not_have_is_refused_on_a_free_entry_too(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A model the config does not have has no price and no limits: on an entry charging
    nothing it had gone upstream, named at the top, in a grader, in a string holding JSON or
    in a form's field, by a team allowed every model; a form's `..._model` field went unread
    on every entry."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    unknown = "gpt-unconfigured"
    grader = {"type": "score_model", "name": "g", "input": [], "model": unknown}
    bodies = [
        {"name": "x", "model": unknown},
        {"name": "x", "testing_criteria": [grader]},
        {"name": "x", "judge": {"grader_model": unknown}},
        {"name": "x", "item": json.dumps({"sampling": {"model": unknown}})},
    ]
    before = upstream_requests(simulator)
    answers = [httpx.post(f"{gateway.url}/v1/evals", json=body, headers=auth) for body in bodies]
    forms = [{"model": (None, unknown)}, {"grader_model": (None, unknown)}]
    answers += [
        httpx.post(
            f"{gateway.url}/v1/uploads/upload_1/parts",
            files={"data": ("part.bin", b"\x00"), **form},
            headers=auth,
        )
        for form in forms
    ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        error = answer.json()["error"]
        assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
        assert unknown in error["message"]
    as_file = httpx.post(
        f"{gateway.url}/v1/uploads/upload_1/parts",
        files={"data": ("part.bin", b"\x00"), "grader_model": ("m.txt", b"gpt-4o")},
        headers=auth,
    )
    assert as_file.status_code == 400 and as_file.json()["error"]["code"] == "invalid_type"
    assert upstream_requests(simulator) == before  # none reached upstream
    # A configured model goes through (the simulator has no evals: upstream's 404 comes back).
    httpx.post(f"{gateway.url}/v1/evals", json={"name": "x", "model": "gpt-4o"}, headers=auth)
    assert upstream_requests(simulator)[-1]["path"] == "/v1/evals"


def test_a_teams_own_fine_tune_goes_through_a_free_entry_and_no_other_teams(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A fine-tune is no configured name: on a free entry it is taken as its team's own, as
    on one charging usage, and refused to any other team."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False,
        passthrough={"allow": OPENED}, fine_tuning={"poll_s": 3600},
    )  # fmt: skip
    a = sdk(gateway, "a")
    job = a.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(a))
    name = complete(simulator, job.id)["fine_tuned_model"]
    follower_pass(redis_server, simulator, lambda gw: TuningJobs(poll_s=3600))()
    grader = {"type": "score_model", "name": "g", "input": [], "model": name}
    body = {"name": "x", "testing_criteria": [grader]}
    before = upstream_requests(simulator)
    theirs = httpx.post(
        f"{gateway.url}/v1/evals", json=body, headers={"Authorization": f"Bearer {key_of('b')}"}
    )
    assert theirs.status_code == 404, theirs.text
    assert upstream_requests(simulator) == before
    httpx.post(
        f"{gateway.url}/v1/evals", json=body, headers={"Authorization": f"Bearer {key_of('a')}"}
    )
    assert upstream_requests(simulator)[-1]["path"] == "/v1/evals"


def test_another_teams_id_in_a_string_holding_json_is_refused(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """A string whose content is JSON (an item, a metadata value) is JSON to an endpoint that
    reads it so: another team's id in it had been read as prose naming none, and sent."""
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, passthrough={"allow": OPENED}
    )
    secret = sdk(gateway, "b").files.create(file=("notes.txt", b"b's"), purpose="user_data").id
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    inner = {"type": "jsonl", "source": {"type": "file_id", "id": secret}}
    bodies = [
        {"name": "x", "data_source": json.dumps(inner)},
        {"name": "x", "metadata": {"spec": json.dumps({"wrapped": json.dumps(inner)})}},
        {"name": "x", "items": [json.dumps([secret])]},
    ]
    before = upstream_requests(simulator)
    for body in bodies:
        answer = httpx.post(f"{gateway.url}/v1/evals", json=body, headers=auth)
        assert answer.status_code == 404, (body, answer.text)
        assert answer.json()["error"]["message"] == f"No such File object: {secret}"
    lenient = httpx.post(
        f"{gateway.url}/v1/evals", json={"name": "x", "spec": f'{{"id": "{secret}", "n": NaN}}'},
        headers=auth,
    )  # fmt: skip
    assert lenient.status_code == 400 and lenient.json()["error"]["code"] == "invalid_json"
    prose = httpx.post(
        f"{gateway.url}/v1/evals", json={"name": "[1] Intro {not json}"}, headers=auth
    )
    after = upstream_requests(simulator)
    assert after[-1]["path"] == "/v1/evals", prose.text
    # One request more (the log keeps the last 200: a full one drops its first).
    assert after[:-1] in (before, before[1:])


def test_json_held_in_a_string_or_a_field_that_gives_a_key_twice_is_refused(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, simulator: ServerThread
) -> None:
    """JSON in a string or a form field goes upstream as it came: the gateway reads a repeated
    key's last value (the caller's own file), the endpoint's parser may take the first
    (another team's)."""
    gateway, secret, mine = opened_with_files(start_gateway, redis_server, tmp_path)
    auth = {"Authorization": f"Bearer {key_of('a')}"}
    both = f'{{"type": "file_id", "id": "{secret}", "id": "{mine}"}}'
    before = upstream_requests(simulator)
    in_string = httpx.post(
        f"{gateway.url}/v1/evals", json={"name": "x", "data_source": both}, headers=auth
    )
    form = raw_form([
        (b'Content-Disposition: form-data; name="source"', both.encode()),
        (b'Content-Disposition: form-data; name="data"; filename="d"', b"x"),
    ])  # fmt: skip
    in_field = httpx.post(
        f"{gateway.url}/v1/uploads/upload_1/parts", content=form,
        headers={**auth, "Content-Type": "multipart/form-data; boundary=XyZ"},
    )  # fmt: skip
    for answer in (in_string, in_field):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_json"
        assert "'id' twice" in answer.json()["error"]["message"]
    assert upstream_requests(simulator) == before  # none reached upstream
    # Given once, the team's own file goes through.
    own = f'{{"type": "file_id", "id": "{mine}"}}'
    sent = httpx.post(
        f"{gateway.url}/v1/evals", json={"name": "x", "data_source": own}, headers=auth
    )
    assert upstream_requests(simulator)[-1]["path"] == "/v1/evals", sent.text


@pytest.mark.parametrize(
    "content_type", ["multipart/mixed; boundary=XyZ", "multipart/alternative; boundary=XyZ"]
)
def test_a_multipart_body_of_another_kind_than_a_form_is_refused(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    content_type: str,
) -> None:
    """A form said to be `multipart/mixed` is no form to the gateway, which searched it as text
    for ids but read no model in it; a parser that reads any multipart body as a form (aiohttp's
    `multipart()`) serves the model it names, one the config does not have."""
    gateway, _, _ = opened_with_files(start_gateway, redis_server, tmp_path)
    body = raw_form([
        (b'Content-Disposition: form-data; name="model"', b"gpt-unconfigured"),
        (b'Content-Disposition: form-data; name="data"; filename="d"', b"x"),
    ])  # fmt: skip
    before = upstream_requests(simulator)
    answer = httpx.post(
        f"{gateway.url}/v1/uploads/upload_1/parts", content=body,
        headers={"Authorization": f"Bearer {key_of('a')}", "Content-Type": content_type},
    )  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_multipart"
    assert upstream_requests(simulator) == before
