"""No team reaches another team's objects, on a real redis-server, with the official SDK: files,
stored chat completions (plain and streamed) and vector stores are the team's that made them;
another team gets the 404 of a missing object for every read, update and delete, an empty list,
and a 404 when its own request names them; the owner pages through its own, either order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import spend
from tests.redis.endpoints.teams import key_of, sdk, serve_teams

KEYS = {name: key_of(name) for name in ("a", "b")}
HI: Any = [{"role": "user", "content": "Say hi."}]


TEAMS: dict[str, dict[str, str]] = {
    "a": {"tier": "tier-5"},
    "b": {"tier": "tier-5"},
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, knobs=False)


def not_found(call: Callable[[], object]) -> dict[str, Any]:
    """The error body of a call that must be a 404."""
    with pytest.raises(openai.NotFoundError) as caught:
        call()
    body = caught.value.response.json()
    assert set(body) == {"error"}
    return dict(body["error"])


def stored_chat(client: openai.OpenAI, **extra: Any) -> str:
    return client.chat.completions.create(model="gpt-4o", messages=HI, store=True, **extra).id


def streamed_chat(client: openai.OpenAI) -> str:
    ids = {
        chunk.id
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=HI, store=True, stream=True
        )
    }
    assert len(ids) == 1
    return ids.pop()


def test_another_team_reaches_none_of_a_teams_objects(
    gateway: ServerThread, store: redis.Redis
) -> None:
    a, b = sdk(gateway, "a"), sdk(gateway, "b")
    doc = b.files.create(file=("doc.txt", b"b's secret text"), purpose="assistants")
    chats = [stored_chat(b, metadata={"k": "v"}), streamed_chat(b)]
    vs = b.vector_stores.create(name="b's docs", file_ids=[doc.id])
    assert store.get(f"o1gw:owner:file:{doc.id}") == b"b"
    # Scored by when it was made, finer than upstream's whole seconds.
    assert int(store.zscore("o1gw:owned:{t:b}:file", doc.id) or 0) in (
        doc.created_at,
        doc.created_at + 1,
    )

    # A file: each read and the delete are the 404 of a file that does not exist.
    missing = not_found(lambda: a.files.retrieve("file-doesnotexist"))
    assert missing == {
        "message": "No such File object: file-doesnotexist", "type": "invalid_request_error",
        "param": "id", "code": None,
    }  # fmt: skip
    expected = {**missing, "message": f"No such File object: {doc.id}"}
    assert not_found(lambda: a.files.retrieve(doc.id)) == expected
    assert not_found(lambda: a.files.content(doc.id)) == expected
    assert not_found(lambda: a.files.delete(doc.id)) == expected
    # Named in A's own request: the same 404.
    assert not_found(lambda: a.vector_stores.create(name="x", file_ids=[doc.id])) == expected
    # Stored chat completions, plain and streamed.
    for chat in chats:
        gone = {
            "message": f"Completion with id '{chat}' not found.",
            "type": "invalid_request_error", "param": None, "code": None,
        }  # fmt: skip
        assert not_found(lambda: a.chat.completions.retrieve(chat)) == gone  # noqa: B023
        assert not_found(lambda: a.chat.completions.update(chat, metadata={"x": "y"})) == gone  # noqa: B023
        assert not_found(lambda: a.chat.completions.messages.list(chat)) == gone  # noqa: B023
        assert not_found(lambda: a.chat.completions.delete(chat)) == gone  # noqa: B023
    # A vector store.
    vs_gone = {
        "message": f"No such VectorStore object: {vs.id}", "type": "invalid_request_error",
        "param": "id", "code": None,
    }  # fmt: skip
    assert not_found(lambda: a.vector_stores.retrieve(vs.id)) == vs_gone
    assert not_found(lambda: a.vector_stores.update(vs.id, name="mine")) == vs_gone
    assert not_found(lambda: a.vector_stores.delete(vs.id)) == vs_gone
    # Lists: empty, as OpenAI answers an empty list.
    empty = {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    auth = {"Authorization": f"Bearer {KEYS['a']}"}
    for path in ("/v1/files", "/v1/chat/completions", "/v1/vector_stores"):
        assert httpx.get(f"{gateway.url}{path}", headers=auth).json() == empty
    assert a.files.list().data == []

    # B still has everything, untouched by A's deletes and updates.
    assert b.files.retrieve(doc.id).id == doc.id
    assert b.files.content(doc.id).read() == b"b's secret text"
    assert [f.id for f in b.files.list()] == [doc.id]
    for chat in chats:
        assert b.chat.completions.retrieve(chat).id == chat
        assert [m.content for m in b.chat.completions.messages.list(chat)] == ["Say hi."]
    assert b.chat.completions.retrieve(chats[0]).metadata == {"k": "v"}
    assert [c.id for c in b.chat.completions.list()] == chats  # oldest first
    assert b.chat.completions.update(chats[1], metadata={"n": "1"}).metadata == {"n": "1"}
    assert b.vector_stores.retrieve(vs.id).name == "b's docs"
    assert b.vector_stores.update(vs.id, name="renamed").name == "renamed"
    assert [s.id for s in b.vector_stores.list()] == [vs.id]

    # B's deletes reach upstream, and the records go with them.
    assert b.chat.completions.delete(chats[0]).deleted
    assert b.vector_stores.delete(vs.id).deleted
    assert b.files.delete(doc.id).deleted
    assert not_found(lambda: b.files.retrieve(doc.id)) == expected
    assert [c.id for c in b.chat.completions.list()] == [chats[1]]
    assert b.vector_stores.list().data == [] and b.files.list().data == []
    assert store.get(f"o1gw:owner:file:{doc.id}") is None
    assert store.zcard("o1gw:owned:{t:b}:file") == 0
    assert store.get(f"o1gw:owner:chat_completion:{chats[0]}") is None
    assert store.zrange("o1gw:owned:{t:b}:chat_completion", 0, -1) == [chats[1].encode()]
    assert store.get(f"o1gw:owner:vector_store:{vs.id}") is None
    assert store.zcard("o1gw:owned:{t:b}:vector_store") == 0


def walk(list_page: Callable[..., Any], **query: Any) -> tuple[list[str], list[bool]]:
    """Every id a list gives, two a page, following `after`; and each page's `has_more`."""
    ids: list[str] = []
    more: list[bool] = []
    after: str | None = None
    while True:
        page = list_page(limit=2, **query, **({"after": after} if after else {}))
        got = [item.id for item in page.data]
        assert (page.first_id, page.last_id) == ((got[0], got[-1]) if got else (None, None))
        ids += got
        more.append(page.has_more)
        if not page.has_more:
            return ids, more
        after = page.last_id


def test_a_team_pages_through_its_own_only(gateway: ServerThread) -> None:
    a, b = sdk(gateway, "a"), sdk(gateway, "b")
    files: list[str] = []
    chats: list[str] = []
    for i in range(5):
        files.append(b.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id)
        a.files.create(file=("a.txt", b"a"), purpose="assistants")
        chats.append(stored_chat(b) if i % 2 else streamed_chat(b))
        stored_chat(a)
    batch = b.files.create(file=("in.jsonl", b"{}"), purpose="batch").id
    stores = [b.vector_stores.create(name=str(i)).id for i in range(3)]
    a.vector_stores.create(name="a's")

    # Files list newest first by default, with a purpose filter.
    newest = [batch, *reversed(files)]
    assert walk(b.files.list) == (newest, [True, True, False])
    assert walk(b.files.list, order="asc") == (newest[::-1], [True, True, False])
    assert walk(b.files.list, purpose="assistants") == (newest[1:], [True, True, False])
    assert [f.id for f in b.files.list(purpose="batch")] == [batch]
    page = b.files.list(limit=5, purpose="assistants")
    assert [f.id for f in page.data] == newest[1:] and not page.has_more
    # Stored chat completions list oldest first, with a model filter.
    assert walk(b.chat.completions.list) == (chats, [True, True, False])
    assert walk(b.chat.completions.list, order="desc")[0] == chats[::-1]
    assert walk(b.chat.completions.list, model="gpt-4o")[0] == chats
    assert b.chat.completions.list(model="gpt-4o-mini").data == []
    # Vector stores newest first.
    assert walk(b.vector_stores.list) == (stores[::-1], [True, False])
    # A sees only its own, and B's ids are no cursor for A.
    assert len(a.files.list().data) == 5 and not set(files) & {f.id for f in a.files.list()}
    assert a.files.list(after=files[2]).data == []
    assert len(a.chat.completions.list().data) == 5
    assert [s.name for s in a.vector_stores.list()] == ["a's"]


def test_a_filtered_list_pages_on_past_objects_it_leaves_out(
    gateway: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A filter matching one of a team's many objects reads many of them upstream for a page:
    # each READS_A_COUNT reads count once more (`test_list_reads`), and the page is whole.
    from gateway.endpoints import owned

    monkeypatch.setattr(owned, "READS_A_COUNT", 4)
    b = sdk(gateway, "b")
    batch = b.files.create(file=("in.jsonl", b"{}"), purpose="batch").id
    files = [b.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id for i in range(6)]
    headers = {"authorization": f"Bearer {key_of('b')}"}
    url = f"{gateway.url}/v1/files"
    first = httpx.get(url, params={"purpose": "batch"}, headers=headers).json()
    assert ([f["id"] for f in first["data"]], first["has_more"]) == ([batch], False)
    assert walk(b.files.list) == ([*reversed(files), batch], [True, True, True, False])
    some = httpx.get(url, params={"purpose": "assistants", "limit": 5}, headers=headers).json()
    assert [f["id"] for f in some["data"]] == files[::-1][:5] and some["has_more"]


def test_an_object_gone_upstream_is_forgotten(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread
) -> None:
    b = sdk(gateway, "b")
    kept = b.files.create(file=("kept.txt", b"k"), purpose="assistants").id
    gone = b.files.create(file=("gone.txt", b"g"), purpose="assistants").id
    # Deleted around the gateway, with its upstream key.
    from tests.conftest import SIM_KEY

    upstream = openai.OpenAI(base_url=f"{simulator.url}/v1", api_key=SIM_KEY, max_retries=0)
    upstream.files.delete(gone)
    assert [f.id for f in b.files.list()] == [kept]
    assert store.get(f"o1gw:owner:file:{gone}") is None
    assert store.zrange("o1gw:owned:{t:b}:file", 0, -1) == [kept.encode()]


def test_files_and_vector_stores_are_counted_never_charged(
    gateway: ServerThread, store: redis.Redis
) -> None:
    b = sdk(gateway, "b")
    upload = b.files.with_raw_response.create(file=("n.txt", b"n"), purpose="assistants")
    doc = upload.parse()
    calls = [
        upload,
        b.files.with_raw_response.list(),
        b.files.with_raw_response.retrieve(doc.id),
        b.vector_stores.with_raw_response.create(name="n", file_ids=[doc.id]),
        b.vector_stores.with_raw_response.list(),
    ]
    # Each was admitted against the team's request limits (and says what is left).
    assert all(int(c.headers["x-ratelimit-remaining-requests"]) > 0 for c in calls)
    assert spend(store, "b") == (0, 0)  # counted, never charged
    chat = stored_chat(b)
    read = b.chat.completions.with_raw_response.retrieve(chat)
    assert int(read.headers["x-ratelimit-remaining-requests"]) > 0  # counted as well
    charged = spend(store, "b")[0]
    assert charged > 0  # the completion itself
    b.chat.completions.list()
    b.chat.completions.messages.list(chat)
    assert spend(store, "b") == (charged, 0)


def test_no_request_body_reaches_another_teams_objects(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    b = sdk(gateway, "b")
    file_id = b.files.create(file=("notes.txt", b"secret notes"), purpose="user_data").id
    store_id = b.vector_stores.create(name="b's", file_ids=[file_id]).id
    a = sdk(gateway, "a")
    before = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    file_part: Any = {"type": "file", "file": {"file_id": file_id}}
    read_file: Any = [{"role": "user", "content": [{"type": "text", "text": "Read"}, file_part]}]
    calls: list[Callable[[], object]] = [
        lambda: a.chat.completions.create(model="gpt-4o", messages=read_file),
        lambda: a.responses.create(
            model="gpt-4o",
            input=[{"role": "user", "content": [{"type": "input_file", "file_id": file_id}]}],
        ),
        lambda: a.responses.create(
            model="gpt-4o",
            input="Search.",
            tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
        ),
        lambda: a.embeddings.create(
            model="text-embedding-3-small", input="x", extra_body={"file_id": file_id}
        ),
        lambda: a.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id),
    ]
    for call in calls:
        not_found(call)
    with pytest.raises(openai.BadRequestError) as info:
        a.responses.create(model="gpt-4o", input="Go on.", extra_body={"conversation": "conv_1"})
    assert info.value.param == "conversation"
    # Refused before anything reached upstream.
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == before


def test_a_files_content_is_relayed_as_it_comes_and_a_broken_one_is_cut_off(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    """A file's content is streamed to the client, not held whole (no length known ahead:
    chunked), byte for byte; when upstream breaks off mid-file, the client's read fails
    rather than ending on an error event it would take for the file's last bytes."""
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, knobs=True)
    b = sdk(gateway, "b")
    data = bytes(range(256)) * 32_768  # 8 MiB
    doc = b.files.create(file=("big.bin", data), purpose="assistants")
    url = f"{gateway.url}/v1/files/{doc.id}/content"
    auth = {"Authorization": f"Bearer {KEYS['b']}"}
    with httpx.stream("GET", url, headers=auth) as answer:
        assert answer.status_code == 200
        assert answer.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in answer.headers
        assert answer.read() == data
    broken = {**auth, "x-sim-fault": "reset"}
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url, headers=broken) as cut:
        assert cut.status_code == 200
        cut.read()
    assert spend(store, "b") == (0, 0)  # counted, never charged


def test_a_file_upload_is_bounded_apart_from_every_other_body(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path
) -> None:
    """An upload is bounded by `server.max_upload_bytes` (OpenAI takes files far larger than
    a chat request), every other body still by `server.max_body_bytes`: a file over the one
    and under the other is taken (sent on as it arrives) and is the team's own; one over the
    upload bound gets 413, as does one sent chunked over the body bound (read whole, as a body
    of no declared length is), and a chat request over the body bound."""
    body_bound, upload_bound = 64 * 1024, 1024 * 1024
    server = {"max_body_bytes": body_bound, "max_upload_bytes": upload_bound}
    gateway = serve_teams(start_gateway, redis_server, tmp_path, TEAMS, server=server)
    a, b = sdk(gateway, "a"), sdk(gateway, "b")
    data = b"x" * (4 * body_bound)
    doc = b.files.create(file=("in.jsonl", data), purpose="batch")
    assert doc.bytes == len(data)
    assert [f.id for f in b.files.list()] == [doc.id]
    assert b.files.content(doc.id).content == data
    assert not a.files.list().data
    not_found(lambda: a.files.retrieve(doc.id))
    with pytest.raises(openai.APIStatusError) as too_large:  # refused as the client still sends
        b.files.create(file=("in.jsonl", b"x" * (32 * upload_bound)), purpose="batch")
    assert too_large.value.status_code == 413
    error: Any = too_large.value.body
    assert error["code"] == "request_too_large"
    assert str(upload_bound) in error["message"]
    assert [f.id for f in b.files.list()] == [doc.id]
    # Sent chunked, its length unknown until its end: read whole, so bounded as any body.
    headers = {
        "Authorization": f"Bearer {KEYS['b']}",
        "Content-Type": "multipart/form-data; boundary=b",
    }
    for size in (body_bound // 2, 2 * body_bound):
        form = (
            b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'
            + b"x" * size + b"\r\n--b--\r\n"
        )  # fmt: skip
        chunked = httpx.post(f"{gateway.url}/v1/files", content=iter([form]), headers=headers)
        if size < body_bound:
            assert chunked.status_code == 200 and chunked.json()["bytes"] == size
            assert {f.id for f in b.files.list()} == {doc.id, chunked.json()["id"]}
        else:
            assert chunked.status_code == 413
            assert "without a Content-Length" in chunked.json()["error"]["message"]
    long: Any = [{"role": "user", "content": "x" * (2 * body_bound)}]
    with pytest.raises(openai.APIStatusError) as chat:
        b.chat.completions.create(model="gpt-4o", messages=long)
    assert chat.value.status_code == 413
    assert str(body_bound) in chat.value.message


def test_a_files_limit_is_taken_as_openai_takes_it(
    gateway: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI takes a files `limit` up to 10,000: a client asking for more than the page the
    gateway reads at once gets that page and `has_more`, and its SDK follows them."""
    import dataclasses

    from gateway.endpoints import files

    b = sdk(gateway, "b")
    made = [b.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id for i in range(5)]
    page = b.files.list(limit=10_000)
    assert [f.id for f in page.data] == made[::-1] and not page.has_more
    with pytest.raises(openai.BadRequestError) as refused:
        b.files.list(limit=10_001)
    assert refused.value.code == "integer_above_max_value"
    # A page cut short of `limit` says so, and the SDK walks on to every file.
    monkeypatch.setattr(files, "FILE", dataclasses.replace(files.FILE, max_page=2))
    page = b.files.list(limit=10_000)
    assert [f.id for f in page.data] == made[:2:-1] and page.has_more
    assert [f.id for f in b.files.list(limit=10_000)] == made[::-1]


def test_vector_stores_page_back_with_before(gateway: ServerThread) -> None:
    """A vector store list's `before` (the SDK's `vector_stores.list(before=...)`) gives the
    page just before that store, as OpenAI pages it: not the first page again."""
    a, b = sdk(gateway, "a"), sdk(gateway, "b")
    stores = []
    for i in range(5):
        stores.append(b.vector_stores.create(name=str(i)).id)
        a.vector_stores.create(name="a's")
    newest = stores[::-1]
    second = b.vector_stores.list(limit=2, after=newest[1])
    assert [s.id for s in second.data] == newest[2:4]
    back = b.vector_stores.list(limit=2, before=second.first_id)
    assert [s.id for s in back.data] == newest[:2] and not back.has_more
    back = b.vector_stores.list(limit=2, before=newest[3])
    assert [s.id for s in back.data] == newest[1:3] and back.has_more
    assert (back.first_id, back.last_id) == (newest[1], newest[2])
    back = b.vector_stores.list(limit=2, before=stores[1], order="asc")
    assert [s.id for s in back.data] == [stores[0]] and not back.has_more


WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_a_streamed_patched_completion_keeps_its_clients_messages(gateway: ServerThread) -> None:
    """gpt-4o takes no developer message: it goes upstream as a system message, streamed as
    upstream streams it, and is stored so there; its messages read back as the client sent
    them."""
    b = sdk(gateway, "b")
    asked: Any = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "Say hi."},
    ]
    made = b.chat.completions.create(model="gpt-4o", messages=asked, store=True, stream=True)
    (completion_id,) = {chunk.id for chunk in made}
    messages = b.chat.completions.messages.list(completion_id)
    assert [(m.role, m.content) for m in messages] == [(m["role"], m["content"]) for m in asked]


@pytest.mark.parametrize("stream", [False, True])
def test_a_patched_stored_completion_reads_back_as_its_client_was_answered(
    gateway: ServerThread, stream: bool
) -> None:
    """o1-mini takes no system message and no tools: upstream stores the patched request and
    the model's raw `<tool_call>` text. Read back, list, messages and update show what the
    client sent and was answered: its tool call, its system message."""
    b = sdk(gateway, "b")
    asked: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Use the get_weather tool for Paris."},
    ]
    made = b.chat.completions.create(
        model="o1-mini", messages=asked, tools=[WEATHER], store=True, stream=stream
    )
    if stream:
        chunks = list(made)  # type: ignore[arg-type]
        completion_id = chunks[0].id
        calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices]
        call_id = next(call[0].id for call in calls if call)
    else:
        completion_id = made.id  # type: ignore[union-attr]
        call_id = made.choices[0].message.tool_calls[0].id  # type: ignore[union-attr,index]
    for read in (
        b.chat.completions.retrieve(completion_id),
        next(c for c in b.chat.completions.list() if c.id == completion_id),
        b.chat.completions.update(completion_id, metadata={"k": "v"}),
    ):
        choice = read.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        assert [c.id for c in choice.message.tool_calls or ()] == [call_id]
    messages = b.chat.completions.messages.list(completion_id, limit=1)
    assert [(m.role, m.content) for m in messages] == [(m["role"], m["content"]) for m in asked]
    assert messages.data[0].id == f"{completion_id}-0"
    b.chat.completions.delete(completion_id)
    not_found(lambda: b.chat.completions.retrieve(completion_id))


@pytest.mark.parametrize("read", ["messages", "retrieve", "list"])
def test_a_patched_completion_gone_upstream_leaves_no_view_behind(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread, read: str
) -> None:
    """Upstream expires stored completions, and they may be deleted around the gateway: the
    client's view of one (what its client sent) is kept no longer than upstream's retention,
    and is dropped, with the owner record, once upstream answers that it has no such
    completion. Its messages are never served from the view after that."""
    b = sdk(gateway, "b")
    asked: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi."},
    ]
    completion_id = b.chat.completions.create(model="o1-mini", messages=asked, store=True).id
    view = f"o1gw:chat-view:{completion_id}"
    assert store.exists(view)
    assert 0 < store.ttl(view) <= 30 * 86400  # upstream's retention of stored completions
    from tests.conftest import SIM_KEY

    upstream = openai.OpenAI(base_url=f"{simulator.url}/v1", api_key=SIM_KEY, max_retries=0)
    upstream.chat.completions.delete(completion_id)  # or expired there
    if read == "messages":
        not_found(lambda: b.chat.completions.messages.list(completion_id))
    elif read == "retrieve":
        not_found(lambda: b.chat.completions.retrieve(completion_id))
    else:
        assert completion_id not in [c.id for c in b.chat.completions.list()]
    assert not store.exists(view)
    assert store.get(f"o1gw:owner:chat_completion:{completion_id}") is None


def test_the_owner_record_of_a_file_upstream_expires_goes_with_it(
    gateway: ServerThread, store: redis.Redis
) -> None:
    """A batch file expires upstream (`expires_at`, 30 days by default): its owner record is
    kept no longer than a day past that, not forever (nobody may list the team's files again
    to find it gone). A file that never expires keeps its record."""
    import time

    b = sdk(gateway, "b")
    made = b.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
    assert made.expires_at is not None
    left = store.ttl(f"o1gw:owner:file:{made.id}")
    assert made.expires_at - time.time() < left <= made.expires_at + 86400 - time.time() + 5
    kept = b.files.create(file=("kept.txt", b"k"), purpose="assistants")
    assert kept.expires_at is None
    assert store.ttl(f"o1gw:owner:file:{kept.id}") == -1


def test_the_owner_record_of_a_stored_completion_goes_after_upstream_deletes_it(
    gateway: ServerThread, store: redis.Redis
) -> None:
    """Upstream keeps a stored chat completion 30 days (`compat.stored_view_ttl_s`): its owner
    record, plain or streamed, a day longer, not forever; and the team's list of them drops
    the ids whose records have gone, not only when a listing reads them."""
    import time

    kept_s = 30 * 86400 + 86400
    owned = "o1gw:owned:{t:b}:chat_completion"
    # One recorded 32 days ago (its owner record gone since): nobody listed the team's since.
    store.zadd(owned, {"chatcmpl-old": time.time() - 32 * 86400})
    b = sdk(gateway, "b")
    for chat in (stored_chat(b), streamed_chat(b)):
        b.chat.completions.retrieve(chat)  # the streamed one's record has landed
        assert kept_s - 60 <= store.ttl(f"o1gw:owner:chat_completion:{chat}") <= kept_s
    assert store.zscore(owned, "chatcmpl-old") is None
    assert store.zcard(owned) == 2
    assert kept_s - 60 <= store.ttl(owned) <= kept_s
    # An owner record gone (expired) while upstream still has the completion: nobody is
    # served it, not even the team that made it.
    store.delete(f"o1gw:owner:chat_completion:{chat}")
    for team in ("a", "b"):
        client = sdk(gateway, team)
        assert not_found(lambda: client.chat.completions.retrieve(chat))["code"] is None  # noqa: B023
        assert not_found(lambda: client.chat.completions.delete(chat))["code"] is None  # noqa: B023


def test_the_team_keeps_no_list_entry_of_a_file_whose_owner_record_expired(
    gateway: ServerThread, store: redis.Redis, redis_server: str
) -> None:
    """A file upstream expires leaves the team's list of files when its owner record goes
    (at the next record of one of the team's files), not only when a listing reads it: a team
    that never lists its files (a batch's input and output files, each batch) kept an entry
    for each file it ever made."""
    import asyncio
    import time

    import redis.asyncio as aioredis

    from gateway.objects.ownership import EXPIRED_GRACE_S, Owners

    async def record_expiring(file_id: str) -> None:
        client = aioredis.from_url(redis_server)
        try:  # upstream deleted it a day ago: its owner record goes in a second
            expires_at = time.time() - EXPIRED_GRACE_S + 1
            await Owners(client).record("file", "b", file_id, time.time(), expires_at)
        finally:
            await client.aclose()

    owned = "o1gw:owned:{t:b}:file"
    asyncio.run(record_expiring("file-old"))
    assert store.zscore(owned, "file-old") is not None
    time.sleep(2.1)
    assert not store.exists("o1gw:owner:file:file-old")
    b = sdk(gateway, "b")
    made = b.files.create(file=("in.jsonl", b"{}\n"), purpose="batch")
    assert made.expires_at is not None
    assert store.zscore(owned, "file-old") is None
    # One that never expires is never taken off; a deleted one leaves the list.
    kept = b.files.create(file=("kept.txt", b"k"), purpose="assistants")
    assert sorted(f.id for f in b.files.list()) == sorted([made.id, kept.id])
    assert b.files.delete(made.id).deleted
    assert [f.id for f in b.files.list()] == [kept.id]
    assert store.zrange(owned, 0, -1) == [kept.id.encode()]
    assert store.zcard("o1gw:expiring:{t:b}:file") == 0
