"""A list page of a team's own objects reads each from upstream; on a real redis-server, with
the official SDK: every `READS_A_COUNT` reads count once against the team's requests per minute
(a filter that leaves most of a team's objects out reads many per page), and the SDK's
auto-pagination, which pages on from the last object of a page, lists every match. So do the
reads of a Responses turn reading its conversation back, and of input items read whole."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from gateway.endpoints import owned
from tests.conftest import GatewayFactory, ServerThread
from tests.redis.endpoints.teams import key_of, sdk, serve_teams

RPM = 5
TEAMS = {
    "b": {"tier": "tier-5"},
    "lim": {"tier": "tier-5", "limits": f"{{requests_per_minute: {RPM}}}"},
}


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(start_gateway, redis_server, tmp_path, TEAMS, knobs=False)


@pytest.fixture
def reads_of_four(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four reads a count, and (as the gateway read them before) at most four a page."""
    monkeypatch.setattr(owned, "READS_A_COUNT", 4, raising=False)
    monkeypatch.setattr(owned, "MAX_PAGE_READS", 4, raising=False)


def refill(store: redis.Redis, team: str) -> None:
    """The team's request buckets full again, as a minute's wait would leave them."""
    for key in store.scan_iter(match=f"{{t:{team}}}:b:*"):
        store.delete(key)


def file_reads(simulator: ServerThread) -> int:
    """The reads of one file upstream received since its log was cleared."""
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return sum(1 for e in log if e["method"] == "GET" and e["path"].startswith("/v1/files/"))


def test_the_sdk_lists_every_match_of_a_filter_that_leaves_many_out(
    gateway: ServerThread, reads_of_four: None
) -> None:
    # A page that read MAX_PAGE_READS objects without a match was answered with no data and
    # `has_more`: the SDK pages on from a page's last object, so with none it stopped, and
    # `files.list(purpose="batch")` listed nothing of the team's batch file.
    b = sdk(gateway, "b")
    batch = b.files.create(file=("in.jsonl", b"{}"), purpose="batch").id
    files = [b.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id for i in range(6)]
    assert [f.id for f in b.files.list(purpose="batch")] == [batch]
    assert [f.id for f in b.files.list(purpose="assistants", limit=2)] == files[::-1]
    assert [f.id for f in b.files.list(purpose="assistants", order="asc", limit=5)] == files


def test_a_lists_reads_upstream_count_against_the_teams_requests(
    gateway: ServerThread, reads_of_four: None, store: redis.Redis, simulator: ServerThread
) -> None:
    # One list counted once however many objects it read upstream (up to 1,000 a page, each a
    # call against the upstream key every team shares): each READS_A_COUNT reads count now.
    lim = sdk(gateway, "lim")
    batch = lim.files.create(file=("in.jsonl", b"{}"), purpose="batch").id
    files = []
    for i in range(10):
        refill(store, "lim")
        files.append(lim.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id)
    refill(store, "lim")
    httpx.delete(f"{simulator.url}/_sim/requests")
    page = lim.files.with_raw_response.list(purpose="batch")
    assert [f.id for f in page.parse().data] == [batch]
    assert file_reads(simulator) == 11
    # Eleven reads: three counts (4, 4 and 3 reads).
    assert page.headers["x-ratelimit-remaining-requests"] == str(RPM - 3)

    # Over the limit before a match: the 429, and nothing read past what was counted.
    refill(store, "lim")
    for _ in range(RPM - 2):
        lim.files.retrieve(batch)
    httpx.delete(f"{simulator.url}/_sim/requests")
    headers = {"authorization": f"Bearer {key_of('lim')}"}
    refused = httpx.get(f"{gateway.url}/v1/files", params={"purpose": "batch"}, headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert file_reads(simulator) == 8

    # Over the limit after some: the page holds them, and the next starts after its last.
    refill(store, "lim")
    for _ in range(RPM - 1):
        lim.files.retrieve(batch)
    cut = httpx.get(f"{gateway.url}/v1/files", params={"purpose": "assistants"}, headers=headers)
    assert cut.status_code == 200, cut.text
    body = cut.json()
    assert [f["id"] for f in body["data"]] == files[::-1][:4]
    assert body["has_more"] is True and body["last_id"] == files[6]


def response_reads(simulator: ServerThread) -> int:
    """The reads of a stored response or its items upstream received since its log was
    cleared."""
    log = httpx.get(f"{simulator.url}/_sim/requests").json()["data"]
    return sum(1 for e in log if e["method"] == "GET" and e["path"].startswith("/v1/responses/"))


def many_items(count: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{i}"} for i in range(count)]


def test_a_turn_reading_a_conversation_upstream_counts_each_reads_worth(
    gateway: ServerThread, reads_of_four: None, store: redis.Redis, simulator: ServerThread
) -> None:
    # A turn served by translation that continues a conversation upstream stores read up to 64
    # responses back and every page of their items (thousands of reads: a page holds 100)
    # for one count, and could then fail before upstream served it, charged nothing.
    lim = sdk(gateway, "lim")
    previous = None
    for _ in range(3):
        refill(store, "lim")
        previous = lim.responses.create(
            model="gpt-4o", input=many_items(250), previous_response_id=previous
        ).id
    refill(store, "lim")
    httpx.delete(f"{simulator.url}/_sim/requests")
    turn = {"model": "o1-mini", "input": "And then?", "previous_response_id": previous}
    headers = {"authorization": f"Bearer {key_of('lim')}"}
    served = httpx.post(f"{gateway.url}/v1/responses", json=turn, headers=headers, timeout=30)
    assert served.status_code == 200, served.text
    # Each response, and three pages of its 250 items: twelve reads, three counts.
    assert response_reads(simulator) == 12
    assert served.headers["x-ratelimit-remaining-requests"] == str(RPM - 3)

    # Over the limit part way: the 429, and nothing read past what was counted.
    refill(store, "lim")
    for _ in range(RPM - 2):
        lim.files.list()
    httpx.delete(f"{simulator.url}/_sim/requests")
    refused = httpx.post(f"{gateway.url}/v1/responses", json=turn, headers=headers, timeout=30)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert response_reads(simulator) == 8


def test_the_input_items_of_a_spelled_out_turn_count_each_reads_worth(
    gateway: ServerThread, reads_of_four: None, store: redis.Redis, simulator: ServerThread
) -> None:
    # The input items of a turn whose conversation the gateway spelled out for upstream are
    # read whole, every page of them, to leave out the earlier turns: one count for them all.
    lim = sdk(gateway, "lim")
    translated = lim.responses.create(model="o1-mini", input="Hi").id
    refill(store, "lim")
    native = lim.responses.create(
        model="gpt-4o", input=many_items(1000), previous_response_id=translated
    ).id
    refill(store, "lim")
    httpx.delete(f"{simulator.url}/_sim/requests")
    items = lim.responses.input_items.with_raw_response.list(native, limit=3, order="asc")
    texts = [i.content[0].text for i in items.parse().data]  # type: ignore[union-attr]
    assert texts == ["0", "1", "2"]
    # 1,000 items and the two of the earlier turn: eleven pages, three counts.
    assert response_reads(simulator) == 11
    assert items.headers["x-ratelimit-remaining-requests"] == str(RPM - 3)
