"""Every call that reaches upstream counts against its team's and its key's requests per
minute, on a real redis-server: reads, lists, updates, cancels and deletes of stored chat
completions, stored responses (native and translated) and fine-tunes, as files, vector stores,
batches and fine-tuning jobs count. Over the limit, the call is OpenAI's 429
`rate_limit_exceeded` with its retry headers and reaches nothing; another team goes on; a list
that reads many objects upstream counts once; nothing counted is charged. `GET /v1/models`,
answered from config and Redis alone, stays free."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from gateway.runtime.tuning_jobs import TuningJobs
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import month, spend
from tests.redis.endpoints.teams import follower_pass, key_of, sdk
from tests.redis.endpoints.test_fine_tuning import complete, training_file

RPM = 5
HI: Any = [{"role": "user", "content": "Say hi."}]
# o1-mini takes no system message: the gateway patches it, and keeps its client's view of the
# stored completion, whose messages it then answers itself (after asking upstream it still has
# it).
PATCHED: Any = [{"role": "system", "content": "Be brief."}, *HI]


def teams_yaml() -> str:
    """`lim` and `other` at RPM requests a minute; `keyed`'s team has the tier's limit, its key
    RPM of its own; `spent` has a budget of $1."""

    def digest(team: str) -> str:
        return hashlib.sha256(key_of(team).encode()).hexdigest()

    limited = f"limits: {{requests_per_minute: {RPM}}}"
    return f"""teams:
  - name: lim
    tier: tier-5
    {limited}
    keys: [{{name: k, sha256: {digest("lim")}}}]
  - name: other
    tier: tier-5
    {limited}
    keys: [{{name: k, sha256: {digest("other")}}}]
  - name: keyed
    tier: tier-5
    keys: [{{name: k, sha256: {digest("keyed")}, {limited}}}]
  - name: spent
    tier: tier-5
    budget_usd: 1
    keys: [{{name: k, sha256: {digest("spent")}}}]
"""


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml())
    # The follower waits an hour between looks: the fine-tune test runs its pass itself.
    return start_gateway(
        redis={"url": redis_server}, admission={"teams_file": str(path)},
        fine_tuning={"poll_s": 3600},
    )  # fmt: skip


def refill(store: redis.Redis, team: str) -> None:
    """The team's (and its keys') request buckets full again, as a minute's wait would leave
    them."""
    for key in store.scan_iter(match=f"{{t:{team}}}:b:*"):
        store.delete(key)


Call = Callable[[httpx.Client], httpx.Response]


def hammer(store: redis.Redis, team: str, call: Call, times: int = RPM + 3) -> list[httpx.Response]:
    """`call` made `times` times as `team`, its buckets full at the start."""
    refill(store, team)
    with httpx.Client(headers={"Authorization": f"Bearer {key_of(team)}"}, timeout=30) as c:
        return [call(c) for _ in range(times)]


def assert_counted(answers: list[httpx.Response], ok: int = 200, scope: str = "team lim") -> None:
    """The first RPM answered (`ok`), each counted (one fewer left each time); then 429s: a
    bucket refills one request every 60 / RPM seconds, far longer than these calls take."""
    statuses = [a.status_code for a in answers]
    assert statuses[:RPM] == [ok] * RPM, [a.text for a in answers]
    left = [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers[:RPM]]
    assert left == list(range(RPM - 1, -1, -1))
    refused = [a for a in answers[RPM:] if a.status_code == 429]
    assert refused and all(a.status_code in (ok, 429) for a in answers[RPM:])
    for answer in refused:
        error = answer.json()["error"]
        assert (error["code"], error["type"]) == ("rate_limit_exceeded", "requests")
        assert scope in error["message"]
        assert f"on requests per min (RPM): Limit {RPM}," in error["message"]
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert int(answer.headers["retry-after"]) >= 1 and int(answer.headers["retry-after-ms"]) > 0


def upstream_log(simulator: ServerThread) -> list[dict[str, Any]]:
    """What upstream was last sent: compared whole, not counted (the simulator keeps the
    session's last 200 requests, so once full a count stands still as requests arrive)."""
    data: list[dict[str, Any]] = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return data


def test_stored_chat_completions_and_responses_count_against_the_request_limits(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread
) -> None:
    lim = sdk(gateway, "lim")
    chats = [lim.chat.completions.create(model="gpt-4o", messages=HI, store=True).id for _ in "ab"]
    patched = lim.chat.completions.create(model="o1-mini", messages=PATCHED, store=True).id
    native = lim.responses.create(model="gpt-4o", input="Hi").id
    translated = lim.responses.create(model="o1-mini", input="Hi").id
    other = sdk(gateway, "other").chat.completions.create(model="gpt-4o", messages=HI, store=True)
    spent = spend(store, "lim")
    assert spent[0] > 0 and spent[1] == 0  # what the completions and responses cost

    chat = f"/v1/chat/completions/{chats[0]}"
    reads: list[Call] = [
        lambda c: c.get(f"{gateway.url}/v1/chat/completions"),  # reads three upstream: once
        lambda c: c.get(f"{gateway.url}{chat}"),
        lambda c: c.post(f"{gateway.url}{chat}", json={"metadata": {"k": "v"}}),
        lambda c: c.get(f"{gateway.url}{chat}/messages"),
        lambda c: c.get(f"{gateway.url}/v1/chat/completions/{patched}/messages"),
    ]
    for response_id in (native, translated):
        reads += [
            lambda c, r=response_id: c.get(f"{gateway.url}/v1/responses/{r}"),  # type: ignore[misc]
            lambda c, r=response_id: c.get(f"{gateway.url}/v1/responses/{r}/input_items"),  # type: ignore[misc]
        ]
    for read in reads:
        answers = hammer(store, "lim", read)
        assert_counted(answers)
        # Over the limit, nothing reached upstream.
        before = upstream_log(simulator)
        with httpx.Client(headers={"Authorization": f"Bearer {key_of('lim')}"}) as c:
            assert read(c).status_code == 429
        assert upstream_log(simulator) == before
        # Another team, at the same limit, is served its own: its bucket is its own.
        refill(store, "other")
        theirs = httpx.get(
            f"{gateway.url}/v1/chat/completions/{other.id}",
            headers={"Authorization": f"Bearer {key_of('other')}"},
        )
        assert theirs.status_code == 200
        assert theirs.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)

    # Neither a response's cancel (upstream refuses to cancel one that is not in the
    # background; the gateway answers one it served by translation itself) nor its delete, nor
    # a stored completion's delete, passes the limit: refused, the object stays.
    for response_id in (native, translated):
        cancel = f"{gateway.url}/v1/responses/{response_id}/cancel"
        assert_counted(hammer(store, "lim", lambda c, u=cancel: c.post(u)), ok=400)  # type: ignore[misc]
    gone = [f"/v1/responses/{native}", f"/v1/responses/{translated}", chat]
    for path in gone:
        answers = hammer(store, "lim", lambda c, p=path: c.get(f"{gateway.url}{p}"), RPM)  # type: ignore[misc]
        with httpx.Client(headers={"Authorization": f"Bearer {key_of('lim')}"}) as c:
            refused = c.delete(f"{gateway.url}{path}")
            assert refused.status_code == 429, refused.text
            refill(store, "lim")
            assert c.get(f"{gateway.url}{path}").status_code == 200  # still there
            deleted = c.delete(f"{gateway.url}{path}")
            assert deleted.status_code == 200
            assert int(deleted.headers["x-ratelimit-remaining-requests"]) == RPM - 2

    # A key's own limit counts them too.
    keyed = sdk(gateway, "keyed")
    keyed.chat.completions.create(model="gpt-4o", messages=HI, store=True)
    assert_counted(
        hammer(store, "keyed", lambda c: c.get(f"{gateway.url}/v1/chat/completions")),
        scope="key key_",
    )

    # Counted, never charged: what the team spent is what its completions and responses cost.
    assert spend(store, "lim") == spent


def test_a_fine_tunes_reads_and_delete_count_and_the_model_list_stays_free(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread, redis_server: str
) -> None:
    lim = sdk(gateway, "lim")
    refill(store, "lim")
    job = lim.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(lim))
    name = complete(simulator, job.id)["fine_tuned_model"]
    follower_pass(redis_server, simulator, lambda gw: TuningJobs(poll_s=3600))()
    spent = spend(store, "lim")

    # Answered from config and Redis alone: never upstream, never counted.
    before = upstream_log(simulator)
    for path in ("/v1/models", "/v1/models/gpt-4o"):
        answers = hammer(store, "lim", lambda c, p=path: c.get(f"{gateway.url}{p}"), 3 * RPM)  # type: ignore[misc]
        assert {a.status_code for a in answers} == {200}
        assert all("x-ratelimit-remaining-requests" not in a.headers for a in answers)
    assert name in {m.id for m in lim.models.list()}
    assert upstream_log(simulator) == before

    model = f"{gateway.url}/v1/models/{name}"
    assert_counted(hammer(store, "lim", lambda c: c.get(model)))
    hammer(store, "lim", lambda c: c.get(model), RPM)
    with httpx.Client(headers={"Authorization": f"Bearer {key_of('lim')}"}) as c:
        assert c.delete(model).status_code == 429
        refill(store, "lim")
        deleted = c.delete(model)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert deleted.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
    assert spend(store, "lim") == spent  # the training was charged; nothing since


def content_reads(simulator: ServerThread, file_id: str) -> int:
    """How often upstream was asked for the file's content."""
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return sum(1 for r in log if r["path"] == f"/v1/files/{file_id}/content")


def test_a_batch_or_job_whose_file_is_read_upstream_counts_before_it_is_read(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread
) -> None:
    """A batch's input file and a job's training file are read upstream, whole, to price them:
    the call counts before that read, so a batch refused for its lines counts, and a call over
    the limit reads nothing. One admitted counts once."""
    lim = sdk(gateway, "lim")
    line = {"custom_id": "1", "method": "POST", "url": "/v1/embeddings", "body": HI}
    bad = lim.files.create(file=("b.jsonl", orjson.dumps(line)), purpose="batch").id
    train = training_file(lim)
    spent = spend(store, "lim")
    batch = {"input_file_id": bad, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    answers = hammer(store, "lim", lambda c: c.post(f"{gateway.url}/v1/batches", json=batch))
    assert [a.json()["error"]["code"] for a in answers[:RPM]] == ["invalid_batch_line"] * RPM
    refused = [a for a in answers[RPM:] if a.status_code == 429]
    assert refused and all(a.json()["error"]["code"] == "rate_limit_exceeded" for a in refused)
    assert content_reads(simulator, bad) == len(answers) - len(refused)

    # Over the limit, a fine-tuning job's training file is not read either.
    job = {"model": "gpt-4o-mini", "training_file": train}
    with httpx.Client(headers={"Authorization": f"Bearer {key_of('lim')}"}) as c:
        assert c.post(f"{gateway.url}/v1/fine_tuning/jobs", json=job).status_code == 429
        assert content_reads(simulator, train) == 0
        # Admitted: the count before the read is the request's only one.
        refill(store, "lim")
        made = c.post(f"{gateway.url}/v1/fine_tuning/jobs", json=job)
        assert made.status_code == 200, made.text
        assert made.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
    assert content_reads(simulator, train) == 1
    assert spend(store, "lim")[0] == spent[0]  # the job is held, not yet charged


def test_a_turn_read_upstream_before_it_is_served_counts_before_the_reads(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread
) -> None:
    """A turn served by translation that continues a conversation upstream stores reads that
    conversation from upstream first (every response back along its chain, and every page of
    their items): the turn counts before those reads, once, and one over the limit reads
    nothing."""
    lim = sdk(gateway, "lim")
    first = lim.responses.create(model="gpt-4o", input="Hi").id
    turn = {"model": "o1-mini", "input": "And then?", "previous_response_id": first}
    spent = spend(store, "lim")

    def reads() -> int:
        log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
        return sum(1 for r in log if r["path"].startswith(f"/v1/responses/{first}"))

    with httpx.Client(headers={"Authorization": f"Bearer {key_of('lim')}"}, timeout=30) as c:
        refill(store, "lim")
        for _ in range(RPM):
            assert c.get(f"{gateway.url}/v1/responses/{first}").status_code == 200
        before = reads()
        refused = c.post(f"{gateway.url}/v1/responses", json=turn)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert reads() == before  # nothing read upstream
        refill(store, "lim")
        served = c.post(f"{gateway.url}/v1/responses", json=turn)
        assert served.status_code == 200, served.text
        assert reads() > before
        # Counted once: before the reads, not again by its hold.
        assert served.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)
    assert spend(store, "lim")[0] > spent[0]  # the turn itself, charged


def test_a_turn_after_a_background_response_counts_before_reading_it_and_a_hit_once(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread
) -> None:
    """A turn continuing a background response whose context the gateway has not learnt yet
    reads that response upstream first: counted before the read, once, a cache hit too."""
    lim = sdk(gateway, "lim")
    queued = lim.responses.create(model="gpt-4o", input="Think.", background=True).id
    turn = {"model": "gpt-4o", "input": "And?", "previous_response_id": queued, "store": False}

    def reads() -> int:
        log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
        return sum(1 for r in log if r["path"] == f"/v1/responses/{queued}")

    auth = {"Authorization": f"Bearer {key_of('lim')}", "x-gateway-cache": "on"}
    with httpx.Client(headers=auth, timeout=30) as c:
        refill(store, "lim")
        for _ in range(RPM):
            assert c.get(f"{gateway.url}/v1/responses/{queued}").status_code == 200
        before = reads()
        refused = c.post(f"{gateway.url}/v1/responses", json=turn)
        assert refused.status_code == 429, refused.text
        assert reads() == before
        refill(store, "lim")
        miss = c.post(f"{gateway.url}/v1/responses", json=turn)
        assert miss.status_code == 200, miss.text
        assert miss.headers["x-gateway-cache"] == "miss"
        hit = c.post(f"{gateway.url}/v1/responses", json=turn)
        assert hit.status_code == 200 and hit.headers["x-gateway-cache"] == "hit"
        assert reads() == before + 2  # each turn read the response upstream
        left = [int(a.headers["x-ratelimit-remaining-requests"]) for a in (miss, hit)]
        assert left == [RPM - 1, RPM - 2]  # each counted once


def test_a_team_that_spent_its_budget_still_reads_and_deletes_what_it_has(
    gateway: ServerThread, store: redis.Redis, simulator: ServerThread
) -> None:
    """Free calls count against the request limits, not the budget: a team whose budget is
    spent (or held by its calls in flight, a batch's) still reads its stored completions,
    responses and batches, downloads its files and deletes them; what costs money (a vector
    store's storage too) is refused, and a batch before its input file is read upstream."""
    team = sdk(gateway, "spent")
    doc = team.files.create(file=("d.txt", b"kept"), purpose="assistants").id
    line = {"custom_id": "1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": HI, "max_tokens": 5}}  # fmt: skip
    lines = team.files.create(file=("b.jsonl", orjson.dumps(line)), purpose="batch").id
    chat = team.chat.completions.create(model="gpt-4o", messages=HI, store=True).id
    response = team.responses.create(model="gpt-4o", input="Hi").id
    spend(store, "spent")
    store.set(f"{{t:spent}}:spend:{month()}", 1_000_000)  # the whole budget

    auth = {"Authorization": f"Bearer {key_of('spent')}"}
    with httpx.Client(headers=auth, timeout=30) as c:
        for path in (
            f"/v1/files/{doc}", f"/v1/files/{doc}/content", "/v1/files",
            f"/v1/chat/completions/{chat}", f"/v1/chat/completions/{chat}/messages",
            f"/v1/responses/{response}", f"/v1/responses/{response}/input_items",
            "/v1/batches", "/v1/vector_stores",
        ):  # fmt: skip
            read = c.get(f"{gateway.url}{path}")
            assert read.status_code == 200, (path, read.text)
            assert int(read.headers["x-ratelimit-remaining-requests"]) > 0
        assert c.delete(f"{gateway.url}/v1/files/{doc}").status_code == 200

        refused = c.post(
            f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            429, "insufficient_quota"
        )  # fmt: skip
        made = c.post(
            f"{gateway.url}/v1/vector_stores", json={"name": "more storage"}
        )  # fmt: skip
        assert made.json()["error"]["code"] == "insufficient_quota"  # upstream bills its storage
        before = content_reads(simulator, lines)
        batch = {"input_file_id": lines, "endpoint": "/v1/chat/completions",
                 "completion_window": "24h"}  # fmt: skip
        refused = c.post(f"{gateway.url}/v1/batches", json=batch)
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert content_reads(simulator, lines) == before  # refused before reading the file
    assert spend(store, "spent") == (1_000_000, 0)
