"""Teams for the endpoint tests: each team's key, a teams file naming them, the `openai` SDK
called as a team, what the simulated upstream billed, and one pass of the gateway's follower."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.config import Config
from gateway.runtime.build import open_gateway
from gateway.runtime.follower import Follower, JobKind
from gateway.runtime.gateway import Gateway
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread, base_config


def key_of(team: str) -> str:
    return f"sk-gw-{team}-0123456789abcdef"


def teams_yaml(teams: dict[str, dict[str, str]]) -> str:
    """A teams file: each team (its name, and its fields such as `tier` or `budget_usd`) with
    one key, `key_of(name)`."""
    lines = ["teams:"]
    for name, fields in teams.items():
        digest = hashlib.sha256(key_of(name).encode()).hexdigest()
        lines.append(f"  - name: {name}")
        lines += [f"    {field}: {value}" for field, value in fields.items()]
        lines.append(f"    keys: [{{name: k, sha256: {digest}}}]")
    return "\n".join(lines) + "\n"


def sdk(server: ServerThread, team: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key_of(team), max_retries=0)


def billed(simulator: ServerThread) -> int:
    """What OpenAI would have charged the gateway's upstream key since the bill was reset."""
    bill = httpx.get(f"{simulator.url}/_sim/bill").json()
    return int(bill["by_key"].get(SIM_KEY, {}).get("total_micros", 0))


def serve_teams(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    teams: dict[str, dict[str, str]],
    *,
    knobs: bool = True,
    config: Config | None = None,
    **sections: Any,
) -> ServerThread:
    """A gateway on `redis_server` knowing `teams`, passing the simulator's `x-sim-*` knobs on
    (unless `knobs` is False); `config` instead of the one wired to the session's simulator;
    `sections` replace more of its config."""
    path = tmp_path / "teams.yaml"
    path.write_text(teams_yaml(teams))
    if knobs:
        sections.setdefault("upstream", {"forward_header_prefixes": ("x-sim-",)})
    admission = {"teams_file": str(path), **sections.pop("admission", {})}
    return start_gateway(config, redis={"url": redis_server}, admission=admission, **sections)


# A team whose calls go upstream on its own key (`upstream_key_env`): the simulator's one key,
# held in the environment variable its record names, so upstream serves it as it does the rest.
OWN_KEY_TEAMS = {"own": {"tier": "tier-5", "upstream_key_env": "OWN_TEAM_OPENAI_KEY"}}


def serve_own_key_team(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, **sections: Any,
) -> ServerThread:  # fmt: skip
    """`serve_teams` of `OWN_KEY_TEAMS`, its key in the environment."""
    monkeypatch.setenv("OWN_TEAM_OPENAI_KEY", SIM_KEY)
    return serve_teams(start_gateway, redis_server, tmp_path, OWN_KEY_TEAMS, **sections)


def refused_batch(
    client: openai.OpenAI, simulator: ServerThread, lines: bytes
) -> openai.BadRequestError:
    """A chat batch of `lines` the gateway refuses (its input file read upstream to check them,
    no batch made there): the error."""
    file_id = client.files.create(file=("in.jsonl", lines), purpose="batch").id
    log = f"{simulator.url}/_sim/requests"
    before = httpx.get(log).json()["data"]
    try:
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    except openai.BadRequestError as exc:
        since = [r for r in httpx.get(log).json()["data"] if r not in before]
        assert since and all(r["path"] != "/v1/batches" for r in since)
        return exc
    raise AssertionError("the batch was made")


def replica_config(simulator: ServerThread, redis_url: str, cluster: bool = False) -> Config:
    """Another replica's config: the same upstream and Redis (`cluster`: a Redis Cluster)."""
    config = base_config(OPENAI_BASE_URL=f"{simulator.url}/v1", OPENAI_API_KEY=SIM_KEY)
    redis = dataclasses.replace(config.redis, url=redis_url, cluster=cluster)
    return dataclasses.replace(config, redis=redis)


def follower_pass(
    redis_server: str, simulator: ServerThread, kind_of: Callable[[Gateway], JobKind],
    cluster: bool = False,
) -> Callable[[], None]:  # fmt: skip
    """One pass of the gateway's follower over the open jobs of one kind (`kind_of` makes it
    for a gateway), for tests whose gateway leaves its own follower waiting an hour."""
    config = replica_config(simulator, redis_server, cluster)

    async def once() -> None:
        gw = open_gateway(config)
        kind = kind_of(gw)
        follower = Follower(gw.redis, gw.upstream, gw.admission, gw.owners, gw.key_headers, [kind])
        try:
            await follower.check_all(kind, shared=False)
        finally:
            await gw.close()

    return lambda: asyncio.run(once())


async def joined(
    replica: ServerThread, team: str, count: int, store: redis.Redis | None = None
) -> None:
    """Until `count` requests of `team` on `replica` wait for an identical call in flight (and,
    given `store`, their polls have marked it awaited in Redis: the call is another replica's)."""
    cache = replica.server.config.app.state.gateway.cache
    deadline = time.monotonic() + 10
    while cache.waiting(team) < count or (
        store is not None and not store.keys(f"gw:cache:*:p:{team}")
    ):
        assert time.monotonic() < deadline, f"{count} requests of {team} to wait"
        await asyncio.sleep(0.01)
