"""The two promises under concurrency, searched for at random: several teams (some within a few
requests of their budget, some calling upstream with keys of their own) send seeded random
requests at once through two gateway replicas sharing one real redis-server: chat (streamed or
not, o1 patched, n > 1, tools), Responses (streamed, in the background and polled, chained by
`previous_response_id`), embeddings, completions, images, audio and batches, with simulated
upstream faults and clients that leave mid-stream. Once everything has settled:

- each team with its own upstream key was charged exactly what upstream billed that key, and
  the teams sharing the gateway's key together what upstream billed it (never less, where a
  fault or a client that left makes the cost unknowable);
- no team spent past its budget, and no hold is left;
- no team's list shows, and no team reaches, another team's objects.

`O1GW_CONCURRENT_N` runs more requests per seed (a longer search), `O1GW_CONCURRENT_SEEDS` other
seeds (comma-separated), `O1GW_CONCURRENT_PARALLEL` more calls at once (12),
`O1GW_CONCURRENT_FAULTS=0` none of the faults and clients that leave,
so that every team's charge must equal its bill exactly. The requests are drawn from the seed;
the order they interleave in is not, so a failure names what went wrong rather than replaying
it exactly."""

from __future__ import annotations

import asyncio
import io
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from gateway.config import SimulatorConfig, Usd
from gateway.simulator import create_simulator
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread
from tests.redis.endpoints.teams import key_of, serve_teams
from tests.redis.endpoints.test_reconciliation import (
    ERAS,
    Case,
    chat,
    completions,
    embeddings,
    images,
    maybe,
    responses,
    speech,
    text,
    transcription,
)

REQUESTS = int(os.environ.get("O1GW_CONCURRENT_N", "160"))
SEEDS = [int(s) for s in os.environ.get("O1GW_CONCURRENT_SEEDS", "1,2").split(",")]
PARALLEL = int(os.environ.get("O1GW_CONCURRENT_PARALLEL", "12"))
# 0: no faults and no clients that leave, so every charge must equal its bill exactly.
FAULT_RATE = float(os.environ.get("O1GW_CONCURRENT_FAULTS", "0.1"))
FAULTS = ["reset", "stream-error", "500", "429"]
# Faults after which what upstream billed is unknowable (it may have run the call whole); an
# error status is known to have cost nothing.
UNKNOWABLE = {"reset", "stream-error"}

# name: (budget in USD or None for the tier's, its own upstream key or None for the gateway's)
TEAMS: dict[str, tuple[str | None, str | None]] = {
    "ash": (None, None),
    "birch": ("0.2", None),
    "cedar": ("0.03", None),
    "dogwood": (None, "sk-fuzz-dogwood"),
    "elm": ("0.1", "sk-fuzz-elm"),
    "fir": ("0.02", "sk-fuzz-fir"),
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[ServerThread]:
    """This module's own upstream, which knows the teams' own keys too."""
    keys = (SIM_KEY, *(own for _, own in TEAMS.values() if own))
    with ServerThread(create_simulator(SimulatorConfig(api_keys=keys))) as server:
        yield server


@pytest.fixture
def replicas(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[ServerThread]:
    teams: dict[str, dict[str, str]] = {}
    for name, (budget, own) in TEAMS.items():
        teams[name] = {"tier": "tier-5"}
        if budget:
            teams[name]["budget_usd"] = budget
        if own:
            env = f"O1GW_FUZZ_KEY_{name.upper()}"
            monkeypatch.setenv(env, own)
            teams[name]["upstream_key_env"] = env
    return [
        serve_teams(
            start_gateway,
            redis_server,
            tmp_path,
            teams,
            batches={"poll_s": 0.2},
            responses={"poll_s": 0.2},
            # Served free: the simulator bills no hosted tool call, only the tokens around it.
            hosted_tools={"web_search_preview": Usd(0)},
        )
        for _ in range(2)
    ]


@pytest.fixture
def store(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)


@dataclass
class Team:
    """What one team did: the objects it made, its responses to chain, whether the cost of
    one of its calls became unknowable (a fault, a client that left)."""

    name: str
    responses: list[str] = field(default_factory=list)
    objects: dict[str, set[str]] = field(default_factory=dict)
    unknowable: list[str] = field(default_factory=list)

    def made(self, kind: str, object_id: str) -> None:
        self.objects.setdefault(kind, set()).add(object_id)


@dataclass
class Run:
    replicas: list[ServerThread]
    simulator: ServerThread
    teams: dict[str, Team]
    problems: list[str] = field(default_factory=list)


def headers_of(team: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {key_of(team)}", **(extra or {})}


def ids_in(body: bytes) -> Iterator[tuple[str, str]]:
    """(kind, id) of the objects an answer (JSON or SSE) names."""
    chunks = [body] if body.startswith(b"{") else [
        line[6:] for line in body.split(b"\n") if line.startswith(b"data: {")
    ]  # fmt: skip
    for chunk in chunks:
        try:
            data = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        found = data.get("response", data) if isinstance(data.get("response"), dict) else data
        object_id = found.get("id")
        if isinstance(object_id, str) and object_id.startswith("resp_"):
            yield "response", object_id
        elif isinstance(object_id, str) and object_id.startswith("chatcmpl-"):
            yield "chat_completion", object_id


async def send(
    run: Run, client: httpx.AsyncClient, team: Team, case: Case, leave_after: int | None
) -> tuple[int, bytes]:
    """Send `case` as `team`; with `leave_after`, a stream's client leaves after that many
    chunks."""
    headers = headers_of(team.name, case.headers)
    kwargs: dict[str, Any] = {"headers": headers}
    if case.json is not None:
        kwargs["content"] = orjson.dumps(case.json)
        headers["content-type"] = "application/json"
    else:
        kwargs["files"], kwargs["data"] = case.files, case.data
    body = b""
    try:
        async with client.stream("POST", case.path, **kwargs) as answer:
            if leave_after is not None and case.stream:
                seen = 0
                async for chunk in answer.aiter_raw():
                    body += chunk
                    seen += 1
                    if seen >= leave_after:
                        team.unknowable.append(f"left: {case.describe()}")
                        return answer.status_code, body
            else:
                body = await answer.aread()
            return answer.status_code, body
    except httpx.HTTPError as exc:
        team.unknowable.append(f"{type(exc).__name__}: {case.describe()}")
        return 0, body


async def background(
    run: Run, client: httpx.AsyncClient, team: Team, case: Case, rng: random.Random
) -> None:
    """A background response: created, then polled (or cancelled) until it ends."""
    assert case.json is not None
    case.json["background"] = True
    case.json["store"] = True
    case.json.pop("stream", None)
    case.stream = False
    status, body = await send(run, client, team, case, None)
    if status != 200:
        return
    made = orjson.loads(body)
    team.made("response", made["id"])
    team.responses.append(made["id"])
    for _ in range(50):
        if rng.random() < FAULT_RATE:
            # Cancelled before it ends, it is charged its hold (upstream may bill it whole).
            team.unknowable.append(f"cancelled: {made['id']}")
            await client.post(f"/v1/responses/{made['id']}/cancel", headers=headers_of(team.name))
        got = await client.get(f"/v1/responses/{made['id']}", headers=headers_of(team.name))
        if got.status_code != 200:
            run.problems.append(f"{team.name}: polling its {made['id']}: {got.status_code}")
            return
        if got.json()["status"] not in ("queued", "in_progress"):
            return
        await asyncio.sleep(0.05)


def batch_lines(rng: random.Random) -> bytes:
    rows = []
    for i in range(rng.randint(1, 4)):
        body: dict[str, Any] = {
            "model": rng.choice(["gpt-4o-mini", "gpt-4o"]),
            "messages": [{"role": "user", "content": text(rng, 1, 30)}],
        }
        if maybe(rng, 0.7):
            body["max_tokens"] = rng.randint(1, 300)
        rows.append(
            {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
    return b"\n".join(orjson.dumps(row) for row in rows)


async def batch(run: Run, client: httpx.AsyncClient, team: Team, rng: random.Random) -> None:
    """A batch of random lines, completed at once or later by the simulator's knob."""
    upload = await client.post(
        "/v1/files",
        headers=headers_of(team.name),
        files={"file": ("in.jsonl", io.BytesIO(batch_lines(rng)))},
        data={"purpose": "batch"},
    )
    if upload.status_code == 429:
        return  # a team that spent its whole budget is refused everything, free calls too
    if upload.status_code != 200:
        run.problems.append(f"{team.name}: upload {upload.status_code} {upload.text[:200]}")
        return
    file_id = upload.json()["id"]
    team.made("file", file_id)
    at_once = maybe(rng)
    made = await client.post(
        "/v1/batches",
        headers=headers_of(team.name, {"x-sim-batch": "complete"} if at_once else {}),
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    if made.status_code != 200:
        if made.status_code != 429:
            run.problems.append(f"{team.name}: batch {made.status_code} {made.text[:200]}")
        return
    batch_id = made.json()["id"]
    team.made("batch", batch_id)
    if not at_once:
        await asyncio.sleep(rng.random() * 0.5)
        await client.post(f"{run.simulator.url}/_sim/batches/{batch_id}/complete")


O1_ERA = ERAS["o1-2024"]  # the simulator's own calendar: the o1 era's models
GENERATORS: dict[str, Callable[[random.Random], Case]] = {
    "chat": lambda rng: chat(rng, O1_ERA), "embeddings": embeddings, "completions": completions, "images": images,
    "speech": speech, "transcription": transcription,
}  # fmt: skip


async def one(run: Run, clients: list[httpx.AsyncClient], rng: random.Random) -> None:
    """One random call: a team, a replica, an endpoint, maybe a fault or a client that leaves."""
    team = run.teams[rng.choice(sorted(run.teams))]
    client = rng.choice(clients)
    kind = rng.choices(
        ["chat", "responses", "background", "embeddings", "completions", "images", "speech",
         "transcription", "batch", "stolen"],
        weights=[30, 18, 6, 6, 5, 5, 5, 5, 6, 2],
    )[0]  # fmt: skip
    if kind == "batch":
        await batch(run, client, team, rng)
        return
    if kind == "stolen":
        await stolen(run, client, team, rng)
        return
    case = (
        responses(rng, team.responses, O1_ERA)
        if kind in ("responses", "background")
        else GENERATORS[kind](rng)
    )
    if kind == "background":
        assert case.json is not None
        case.json["model"] = rng.choice(["gpt-4o", "gpt-4o-mini"])  # o1 is served by translation
        await background(run, client, team, case, rng)
        return
    if case.data and case.data.get("response_format") in ("srt", "vtt"):
        # Subtitles say no duration: whisper-1's are charged the hold by design (README).
        team.unknowable.append(f"subtitles: {case.describe()}")
    if maybe(rng, FAULT_RATE):
        case.headers["x-sim-fault"] = rng.choice(FAULTS)
        if case.headers["x-sim-fault"] in UNKNOWABLE:
            team.unknowable.append(f"fault: {case.describe()}")
    if case.stream and maybe(rng, 0.15):
        case.headers["x-sim-chunk-interval-ms"] = "20"
    leave = case.stream and maybe(rng, 1.5 * FAULT_RATE)
    leave_after = rng.randint(1, 3) if leave else None
    status, body = await send(run, client, team, case, leave_after)
    if status >= 500 and "x-sim-fault" not in case.headers:
        run.problems.append(
            f"{team.name}: {status} without a fault: {case.describe()} {body[:300]!r}"
        )
    if status == 200:
        keeps = case.json is not None and case.json.get("store") is not False
        for object_kind, object_id in set(ids_in(body)):
            if object_kind == "response":
                team.made(object_kind, object_id)
                if keeps:
                    team.responses.append(object_id)
            elif case.json and case.json.get("store"):
                team.made(object_kind, object_id)


async def stolen(run: Run, client: httpx.AsyncClient, team: Team, rng: random.Random) -> None:
    """Another team's response given as `previous_response_id`: refused before upstream."""
    others = [t for t in run.teams.values() if t is not team and t.responses]
    if not others:
        return
    victim = rng.choice(others)
    theirs = rng.choice(victim.responses)
    answer = await client.post(
        "/v1/responses",
        headers=headers_of(team.name),
        json={"model": "gpt-4o-mini", "input": "go on", "previous_response_id": theirs},
    )
    if answer.status_code not in (400, 404):
        run.problems.append(
            f"{team.name} chained {victim.name}'s {theirs}: {answer.status_code} {answer.text[:200]}"
        )


async def workload(run: Run, seed: int) -> None:
    rng = random.Random(seed)
    plans = [random.Random(rng.getrandbits(64)) for _ in range(REQUESTS)]
    limits = httpx.Limits(max_connections=PARALLEL * 2)
    clients = [httpx.AsyncClient(base_url=r.url, timeout=30, limits=limits) for r in run.replicas]
    gate = asyncio.Semaphore(PARALLEL)

    async def guarded(plan: random.Random) -> None:
        async with gate:
            await one(run, clients, plan)

    try:
        await asyncio.gather(*(guarded(plan) for plan in plans))
    finally:
        for client in clients:
            await client.aclose()


def month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def ledger(store: redis.Redis, team: str) -> tuple[int, int, int]:
    """(settled spend, held, open holds) of a team this month, in micro-dollars."""
    spend = int(store.get(f"{{t:{team}}}:spend:{month()}") or 0)
    held = int(store.get(f"{{t:{team}}}:held:{month()}") or 0)
    return spend, held, int(store.zcard(f"{{t:{team}}}:holds"))


def bill_by_key(simulator: ServerThread) -> dict[str, int]:
    bill = httpx.get(f"{simulator.url}/_sim/bill").json()
    return {key: int(entry["total_micros"]) for key, entry in bill["by_key"].items()}


async def settle(run: Run, store: redis.Redis) -> None:
    """Until no hold is left (the followers charge batches and background responses as they
    end), or a minute has passed."""
    for _ in range(600):
        if all(ledger(store, name)[1:] == (0, 0) for name in run.teams):
            return
        await asyncio.sleep(0.1)


LISTS = {"file": "/v1/files", "batch": "/v1/batches", "chat_completion": "/v1/chat/completions"}
READS = {
    "file": "/v1/files/{}",
    "batch": "/v1/batches/{}",
    "response": "/v1/responses/{}",
    "chat_completion": "/v1/chat/completions/{}",
}


def check_ownership(run: Run) -> None:
    gateway = run.replicas[0].url
    for team in run.teams.values():
        for kind, path in LISTS.items():
            listed = httpx.get(f"{gateway}{path}?limit=100", headers=headers_of(team.name))
            if listed.status_code == 429:
                continue  # its whole budget spent: refused everything
            if listed.status_code != 200:
                run.problems.append(f"{team.name}: {path} {listed.status_code}")
                continue
            foreign = {o["id"] for o in listed.json()["data"]} - team.objects.get(kind, set())
            # A batch's output file is the team's too, though it never uploaded it.
            foreign = {i for i in foreign if not owned_output(run, team, i)}
            others = {
                i for t in run.teams.values() if t is not team for i in t.objects.get(kind, ())
            }
            if foreign:
                run.problems.append(
                    f"{team.name}: {path} lists others' {sorted(foreign & others)}, "
                    f"unknown {sorted(foreign - others)}"
                )
        for other in run.teams.values():
            if other is team:
                continue
            for kind, ids in other.objects.items():
                for object_id in sorted(ids)[:3]:
                    read = httpx.get(
                        f"{gateway}{READS[kind].format(object_id)}", headers=headers_of(team.name)
                    )
                    if read.status_code != 404:
                        run.problems.append(
                            f"{team.name} read {other.name}'s {object_id}: {read.status_code}"
                        )


def owned_output(run: Run, team: Team, file_id: str) -> bool:
    for batch_id in team.objects.get("batch", ()):
        got = httpx.get(
            f"{run.replicas[0].url}/v1/batches/{batch_id}", headers=headers_of(team.name)
        ).json()
        if file_id in (got.get("output_file_id"), got.get("error_file_id")):
            return True
    return False


def check_money(run: Run, store: redis.Redis) -> None:
    bill = bill_by_key(run.simulator)
    shared_spend, shared_unknowable = 0, False
    for name, team in run.teams.items():
        spend, held, holds = ledger(store, name)
        budget, own = TEAMS[name]
        if held or holds:
            run.problems.append(f"{name}: {held} µ$ still held in {holds} holds")
        if budget is not None and spend > round(float(budget) * 1_000_000):
            run.problems.append(f"{name}: spent {spend} µ$ past its budget of ${budget}")
        if own is None:
            shared_spend += spend
            shared_unknowable |= bool(team.unknowable)
            continue
        billed = bill.get(own, 0)
        if spend < billed or (spend != billed and not team.unknowable):
            run.problems.append(
                f"{name}: charged {spend} µ$, its key billed {billed} "
                f"({len(team.unknowable)} unknowable)"
            )
    billed = bill.get(SIM_KEY, 0)
    if shared_spend < billed or (shared_spend != billed and not shared_unknowable):
        run.problems.append(f"shared key: charged {shared_spend} µ$, billed {billed}")


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_random_requests_keep_both_promises(
    replicas: list[ServerThread], simulator: ServerThread, store: redis.Redis, seed: int
) -> None:
    httpx.delete(f"{simulator.url}/_sim/bill")
    run = Run(replicas, simulator, {name: Team(name) for name in TEAMS})

    async def main() -> None:
        await workload(run, seed)
        await settle(run, store)

    asyncio.run(main())
    check_money(run, store)
    check_ownership(run)
    assert not run.problems, "\n".join(run.problems)
