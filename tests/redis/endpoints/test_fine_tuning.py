"""Fine-tuning governed end to end on a real redis-server, with the official SDK: a job is held at
creation (its training file's tokens times its epochs at the training price), followed by the
gateway and charged what upstream bills for the tokens it trained; its fine-tuned model is
then served to its team only, at the fine-tuned price; every job, model and result file is the
team's own; a team that cannot afford the hold is refused before anything is created.

The simulated upstream moves a job one step each time it is read, so most tests run the
follower's pass themselves (`follow`) against a gateway that leaves it to them: each pass is
one read, and nothing moves a job between the test's own steps."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.runtime.tuning_jobs import TuningJobs
from tests.conftest import SIM_KEY, GatewayFactory, ServerThread
from tests.redis.admission.test_end_to_end import month, spend
from tests.redis.endpoints.teams import follower_pass, sdk, serve_own_key_team, serve_teams
from tests.redis.endpoints.test_batches import TEAMS  # the same teams

HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def gateway(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    # The gateway's own follower waits an hour between looks: the tests run it (`follow`).
    return serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, fine_tuning={"poll_s": 3600}
    )


@pytest.fixture
def shut_down(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    """A replica judging by a day after gpt-4o-mini's shutdown (2027-01-14), on the same store,
    passing the simulator's knobs on."""
    return serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, retirement={"today": "2027-02-01"}
    )


@pytest.fixture
def follow(redis_server: str, simulator: ServerThread) -> Callable[[], None]:
    """One pass of the gateway's follower over the open fine-tuning jobs."""
    return follower_pass(redis_server, simulator, lambda gw: TuningJobs(poll_s=3600))


def bill(simulator: ServerThread) -> list[dict[str, Any]]:
    lines = httpx.get(f"{simulator.url}/_sim/bill").json()["by_key"].get(SIM_KEY, {})
    return list(lines.get("lines", []))


def billed(simulator: ServerThread, endpoint: str | None = None) -> int:
    return sum(line["micros"] for line in bill(simulator) if endpoint in (None, line["endpoint"]))


def training_file(client: openai.OpenAI, examples: int = 3) -> str:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You answer like a pirate."},
                {"role": "user", "content": f"What is {i} and {i}?"},
                {"role": "assistant", "content": f"Arr, {2 * i}, matey."},
            ]
        }
        for i in range(examples)
    ]
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    return client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id


def complete(simulator: ServerThread, job_id: str) -> dict[str, Any]:
    done: dict[str, Any] = httpx.post(
        f"{simulator.url}/_sim/fine_tuning/jobs/{job_id}/complete"
    ).json()
    return done


def held(store: redis.Redis, team: str) -> int:
    """What the team has held now, in micro-dollars."""
    return int(store.get(f"{{t:{team}}}:held:{month()}") or 0)


def newest_upstream_job(simulator: ServerThread) -> str | None:
    """The newest job upstream has under the gateway's key (a list reads, never advances)."""
    page = httpx.get(
        f"{simulator.url}/v1/fine_tuning/jobs?limit=1",
        headers={"Authorization": f"Bearer {SIM_KEY}"},
    ).json()
    return page["data"][0]["id"] if page["data"] else None


def test_a_job_is_charged_what_upstream_bills_and_its_model_serves_its_team(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    client = sdk(gateway, "payer")
    file_id = training_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    # The configured name: upstream is asked to fine-tune its snapshot.
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=file_id, suffix="pirate",
        hyperparameters={"n_epochs": 2},
    )  # fmt: skip
    assert job.model == "gpt-4o-mini-2024-07-18"
    hold = held(store, "payer")
    assert hold > 0  # the worst case, held while the job runs
    follow()  # the job is not over: nothing is settled
    assert held(store, "payer") == hold and store.hlen("o1gw:fine_tuning_jobs:open") == 1
    done = complete(simulator, job.id)
    assert done["status"] == "succeeded"
    follow()
    assert spend(store, "payer") == (billed(simulator), 0)
    assert store.hlen("o1gw:fine_tuning_jobs:open") == 0
    (training,) = bill(simulator)
    assert training["endpoint"] == "/v1/fine_tuning/jobs"
    # ceil(trained tokens x $3 / 1M): the charge to the micro-dollar.
    assert training["micros"] == -(-done["trained_tokens"] * 3_000_000 // 1_000_000)
    assert hold >= training["micros"]

    # Its model, its result file: the team's.
    name = done["fine_tuned_model"]
    assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
    assert client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model == name
    (result,) = done["result_files"]
    assert client.files.content(result).read().startswith(b"step,")
    assert client.models.retrieve(name).id == name
    listed = {m.id: m for m in client.models.list()}
    assert listed[name].shutdown_date == "2027-01-14"  # its base's: they go together
    assert client.fine_tuning.jobs.list_events(job.id).data[0].message.startswith("The job")
    steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data]
    assert steps == [6, 3]  # each epoch's end

    # Served at the fine-tuned price ($0.30 / $1.20), charged what upstream bills.
    before = spend(store, "payer")[0], billed(simulator)
    chat = client.chat.completions.create(model=name, messages=HI)
    assert chat.model == name and chat.usage is not None
    inference = -(
        -(chat.usage.prompt_tokens * 300_000 + chat.usage.completion_tokens * 1_200_000)
        // 1_000_000
    )
    assert billed(simulator) - before[1] == inference
    assert spend(store, "payer") == (before[0] + inference, 0)

    # Deleted by its team: upstream's model is gone, and so is the team's claim on the name.
    assert client.models.delete(name).deleted
    assert store.get(f"o1gw:owner:model:{name}") is None
    assert store.zscore("o1gw:owned:{t:payer}:model", name) is None
    with pytest.raises(openai.NotFoundError) as gone:
        client.chat.completions.create(model=name, messages=HI)
    assert gone.value.code == "model_not_found"


def not_found(call: Callable[[], object]) -> dict[str, Any]:
    with pytest.raises(openai.NotFoundError) as caught:
        call()
    return dict(caught.value.response.json()["error"])


def test_another_team_reaches_neither_the_job_nor_its_model_nor_its_files(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    mine = sdk(gateway, "payer")
    file_id = training_file(mine)
    job = mine.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=file_id)
    name = complete(simulator, job.id)["fine_tuned_model"]
    assert mine.fine_tuning.jobs.retrieve(job.id).status == "succeeded"  # the model is the team's

    theirs = sdk(gateway, "other")
    missing = {
        "message": f"No such FineTuningJob object: {job.id}", "type": "invalid_request_error",
        "param": "id", "code": None,
    }  # fmt: skip
    assert not_found(lambda: theirs.fine_tuning.jobs.retrieve(job.id)) == missing
    assert not_found(lambda: theirs.fine_tuning.jobs.cancel(job.id)) == missing
    assert not_found(lambda: theirs.fine_tuning.jobs.list_events(job.id)) == missing
    assert not_found(lambda: theirs.fine_tuning.jobs.checkpoints.list(job.id)) == missing
    assert theirs.fine_tuning.jobs.list().data == []
    # The model: the 404 of a model nobody has, wherever a model is named.
    no_model = {
        "message": f"The model `{name}` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": None, "code": "model_not_found",
    }  # fmt: skip
    assert not_found(lambda: theirs.chat.completions.create(model=name, messages=HI)) == no_model
    assert not_found(lambda: theirs.responses.create(model=name, input="Hi")) == no_model
    assert not_found(lambda: theirs.models.retrieve(name)) == no_model
    assert not_found(lambda: theirs.models.delete(name)) == no_model
    # Nor is it a base to fine-tune further.
    base = theirs.fine_tuning.jobs.create
    assert not_found(lambda: base(model=name, training_file=training_file(theirs))) == no_model
    assert name not in [m.id for m in theirs.models.list()]
    # Its files, named in the other team's own job.
    no_file = not_found(
        lambda: theirs.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    )
    assert no_file["message"] == f"No such File object: {file_id}"
    own = training_file(theirs)
    no_file = not_found(
        lambda: theirs.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=own, validation_file=file_id
        )
    )
    assert no_file["message"] == f"No such File object: {file_id}"
    # A batch line naming the model.
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": name, "messages": HI}}  # fmt: skip
    batch_input = theirs.files.create(
        file=("in.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="batch"
    ).id
    batch: dict[str, Any] = {
        "input_file_id": batch_input, "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }  # fmt: skip
    assert not_found(lambda: theirs.batches.create(**batch)) == no_model

    # The owner still has all of it.
    assert mine.fine_tuning.jobs.retrieve(job.id).id == job.id
    assert mine.chat.completions.create(model=name, messages=HI).model == name
    assert mine.models.retrieve(name).id == name


def test_a_job_the_team_cannot_afford_or_may_not_train_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    poor = sdk(gateway, "poor")
    # 20 examples of some 30 tokens, 10 epochs held for "auto", at $25/1M: about $0.15 > $0.01.
    file_id = training_file(poor, examples=20)
    httpx.delete(f"{simulator.url}/_sim/bill")
    newest = newest_upstream_job(simulator)
    with pytest.raises(openai.RateLimitError) as info:
        poor.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=file_id)
    assert info.value.code == "request_over_budget"
    assert newest_upstream_job(simulator) == newest
    # Epochs named in the method count too: 1 epoch of gpt-4o-mini ($3/1M) fits the budget.
    method: Any = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}
    small_job = poor.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=file_id, method=method
    )
    assert newest_upstream_job(simulator) == small_job.id
    with pytest.raises(openai.RateLimitError):
        poor.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file_id, hyperparameters={"n_epochs": 50}
        )
    assert newest_upstream_job(simulator) == small_job.id

    payer = sdk(gateway, "payer")
    payer_file = training_file(payer)
    with pytest.raises(openai.BadRequestError) as untrainable:
        payer.fine_tuning.jobs.create(model="o1-mini", training_file=payer_file)
    assert untrainable.value.code == "model_not_available"
    with pytest.raises(openai.BadRequestError) as method_refused:
        payer.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=payer_file, method={"type": "reinforcement"}
        )
    assert method_refused.value.param == "method.type"
    small = sdk(gateway, "small")  # the free tier has no gpt-4o
    with pytest.raises(openai.NotFoundError) as outside:
        small.fine_tuning.jobs.create(model="gpt-4o", training_file=training_file(small))
    assert outside.value.code == "model_not_found"
    assert newest_upstream_job(simulator) == small_job.id
    assert billed(simulator) == 0
    assert spend(store, "payer") == (0, 0) and spend(store, "small") == (0, 0)


def test_a_cancelled_job_is_charged_what_it_trained_nothing(
    gateway: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    client = sdk(gateway, "payer")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-2024-08-06", training_file=training_file(client)
    )
    assert held(store, "payer") > 0
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    follow()
    assert spend(store, "payer") == (0, 0)
    assert store.hlen("o1gw:fine_tuning_jobs:open") == 0


def test_a_job_names_the_gateway_not_the_upstream_organization(
    gateway: ServerThread, simulator: ServerThread
) -> None:
    client = sdk(gateway, "payer")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client))
    cancelled = client.fine_tuning.jobs.cancel(job.id)  # before a read moves it on upstream
    upstream = httpx.get(
        f"{simulator.url}/v1/fine_tuning/jobs/{job.id}",
        headers={"Authorization": f"Bearer {SIM_KEY}"},
    ).json()
    assert upstream["organization_id"].startswith("org-")  # every team's jobs name it
    shown = [
        job,
        client.fine_tuning.jobs.retrieve(job.id),
        *client.fine_tuning.jobs.list().data,
        cancelled,
    ]
    assert [j.organization_id for j in shown] == ["o1-gateway"] * len(shown)


def over_quota_job(client: openai.OpenAI) -> Any:
    """A job upstream failed on the organization's quota, read as failed."""
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training_file(client),
        extra_headers={"x-sim-fine-tuning": "over-quota"},
    )  # fmt: skip
    failed = client.fine_tuning.jobs.retrieve(job.id)  # the read moves it out of validation
    assert failed.status == "failed"
    return failed


def test_a_job_failed_on_the_organizations_quota_names_it_to_its_team_nowhere(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, fine_tuning={"poll_s": 3600}
    )
    client = sdk(gateway, "payer")
    failed = over_quota_job(client)
    (listed,) = client.fine_tuning.jobs.list().data
    for seen in (failed, listed):
        assert seen.error is not None and seen.error.code == "insufficient_quota"
        assert "org-" not in seen.error.message and "hard limit" not in seen.error.message
        assert "operator" in seen.error.message
    said = [e.message for e in client.fine_tuning.jobs.list_events(failed.id).data]
    assert any("Quota remaining for [redacted]" in m for m in said)
    assert not any("org-" in m for m in said)
    # The operator has upstream's own words, from each read that told them otherwise.
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway"]
    heard = [line for line in logged if line.startswith("upstream default answered team payer")]
    assert len(heard) == 3  # the job read, the job listed, its failure's event
    assert all("Quota remaining for org-simulatedOrganization001" in line for line in heard)


def test_a_job_of_a_team_on_its_own_key_failed_on_its_quota_is_told_of_that_key(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The quota is that of the account of the key the job ran on: the team's own to check.
    gateway = serve_own_key_team(
        start_gateway, redis_server, tmp_path, monkeypatch, fine_tuning={"poll_s": 3600}
    )
    client = sdk(gateway, "own")
    failed = over_quota_job(client)
    for seen in (failed, *client.fine_tuning.jobs.list().data):
        assert seen.error is not None and seen.error.message == (
            "The upstream account of your team's own upstream key cannot serve requests now "
            "(insufficient_quota). Please check that key's OpenAI project, or ask the gateway's "
            "operator."
        )


def test_the_gateway_follows_a_job_that_fails_and_charges_it_nothing(
    start_gateway: GatewayFactory, redis_server: str, tmp_path: Path, store: redis.Redis
) -> None:
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False, fine_tuning={"poll_s": 0.1}
    )
    client = sdk(gateway, "payer")
    broken = client.files.create(file=("train.jsonl", b"not json\n"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=broken)
    # Its own follower reads the job until upstream fails it (an invalid training file).
    deadline = time.monotonic() + 10
    while store.hlen("o1gw:fine_tuning_jobs:open"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "failed"
    assert spend(store, "payer") == (0, 0)


def test_a_fine_tune_shuts_down_with_its_base(
    gateway: ServerThread,
    shut_down: ServerThread,
    simulator: ServerThread,
    follow: Callable[[], None],
) -> None:
    client = sdk(gateway, "payer")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client))
    name = complete(simulator, job.id)["fine_tuned_model"]
    follow()  # the job ended: its model is the team's
    assert client.chat.completions.create(model=name, messages=HI).model == name
    assert name in [m.id for m in client.models.list()]
    after = sdk(shut_down, "payer")
    httpx.delete(f"{simulator.url}/_sim/requests")  # it keeps the session's last 200 only
    for named, call in (
        (name, lambda: after.chat.completions.create(model=name, messages=HI)),
        (
            "gpt-4o-mini",
            lambda: after.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-x"),
        ),
        # Retrieved, it is answered here too: upstream has it no more either, so a read there
        # would spend the team's request limits on upstream's bare 404.
        (name, lambda: after.models.retrieve(name)),
    ):
        refused = not_found(call)
        assert refused["code"] == "model_not_found"
        # Its base's successor, which serves requests naming the base, cannot stand in here.
        assert refused["message"].startswith(
            f"The model `{named}` was shut down on 2027-01-14; its successor `gpt-6-luna` cannot"
            " stand in for it here"
        )
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == []
    # Refused, it is no model the team may use: not listed (upstream's list leaves it out too).
    assert name not in [m.id for m in after.models.list()]
    # A batch naming it is refused; no successor is offered for a fine-tune (none stands in).
    line = {"custom_id": "r", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": name, "messages": HI}}  # fmt: skip
    file_id = after.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch").id
    with pytest.raises(openai.BadRequestError) as info:
        after.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert info.value.message.endswith(f"its model {name} was shut down on 2027-01-14.")


def test_a_fine_tune_of_a_shut_down_base_can_still_be_deleted_by_its_team(
    shut_down: ServerThread,
    gateway: ServerThread,
    simulator: ServerThread,
    follow: Callable[[], None],
) -> None:
    client = sdk(gateway, "payer")
    jobs = [
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client))
        for _ in range(2)
    ]
    kept, gone = (complete(simulator, job.id)["fine_tuned_model"] for job in jobs)
    follow()  # both jobs ended: their models are the team's
    log = f"{simulator.url}/_sim/requests"

    def asked_upstream(call: Callable[[], object]) -> tuple[dict[str, Any], int]:
        httpx.delete(log)  # it keeps the session's last 200 requests: counting them stops at 200
        refused = not_found(call)
        return refused, len(httpx.get(log).json()["data"])

    def nobody_has(name: str) -> str:
        return f"The model `{name}` does not exist or you do not have access to it."

    # Another team deletes neither, and upstream is not asked.
    theirs = sdk(shut_down, "other")
    for name in (kept, gone):
        assert asked_upstream(partial(theirs.models.delete, name)) == (
            {"message": nobody_has(name), "type": "invalid_request_error", "param": None,
             "code": "model_not_found"},
            0,
        )  # fmt: skip
    after = sdk(shut_down, "payer")
    # Upstream, still on an earlier day, has it: deleted there, and forgotten here.
    assert after.models.delete(kept).deleted
    refused, asked = asked_upstream(lambda: after.models.delete(kept))
    assert (refused["message"], asked) == (nobody_has(kept), 0)
    # Upstream on the same day has it no more, gone with its base: forgotten here too, and
    # the 404 says why, as a read of it does.
    on_the_day = after.with_options(default_headers={"x-sim-today": "2027-02-01"})
    refused, asked = asked_upstream(lambda: on_the_day.models.delete(gone))
    assert (refused["code"], asked) == ("model_not_found", 1)
    assert refused["message"].startswith(f"The model `{gone}` was shut down on 2027-01-14")
    refused, asked = asked_upstream(lambda: on_the_day.models.delete(gone))
    assert (refused["message"], asked) == (nobody_has(gone), 0)


def within_budget(
    simulator: ServerThread,
    store: redis.Redis,
    follow: Callable[[], None],
    poor: openai.OpenAI,
    file_id: str,
    method: Any,
    hyperparameters: Any,
) -> None:
    """A gpt-4o-mini job of team `poor` ($0.01) is refused for its budget, or charged no more
    than the budget once it has trained."""
    try:
        job = poor.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file_id, method=method,
            hyperparameters=hyperparameters,
        )  # fmt: skip
    except openai.RateLimitError as refused:
        assert refused.code == "request_over_budget"
        assert spend(store, "poor") == (0, 0)
        return
    trained = complete(simulator, job.id)["trained_tokens"]
    follow()
    spent, _ = spend(store, "poor")
    assert spent <= 10_000, f"{trained} tokens trained, {spent} micro-dollars spent"


def test_epochs_are_held_from_the_hyperparameters_upstream_reads(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    """A `method` that names no `type` has no hyperparameters upstream reads: it trains the
    legacy `hyperparameters.n_epochs` (50 here, about $0.09 of gpt-4o-mini training), which
    must be held, not the method's 1 epoch ($0.002) that fits a $0.01 budget."""
    poor = sdk(gateway, "poor")
    file_id = training_file(poor, examples=20)
    method: Any = {"supervised": {"hyperparameters": {"n_epochs": 1}}}
    within_budget(simulator, store, follow, poor, file_id, method, {"n_epochs": 50})


def test_epochs_given_in_both_places_are_held_at_the_most_upstream_may_train(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis, follow: Callable[[], None]
) -> None:
    """A job giving its method's hyperparameters `n_epochs: auto` and the legacy
    `hyperparameters.n_epochs: 1`: upstream reads the method's and picks the epochs itself (3
    here, about $0.013 of gpt-4o-mini training for this file), so the hold is the assumed
    bound for auto, not the legacy field's one epoch ($0.005) that fits a $0.01 budget."""
    poor = sdk(gateway, "poor")
    story = " ".join(["Arr, the sea was wide and the wind was strong"] * 8)
    rows = [
        {"messages": [
            {"role": "user", "content": f"Tell me a story {i}."},
            {"role": "assistant", "content": story},
        ]}
        for i in range(15)
    ]  # fmt: skip
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    file_id = poor.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id
    method: Any = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}}
    within_budget(simulator, store, follow, poor, file_id, method, {"n_epochs": 1})


@pytest.mark.parametrize("epochs", ["50", 50.0, True])
def test_epochs_a_lenient_upstream_could_read_as_a_count_are_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, epochs: Any
) -> None:
    """Held as auto (10 epochs), "50" or 50.0 read as the count they spell would train 50:
    refused as upstream refuses them, before anything reaches it."""
    payer = sdk(gateway, "payer")
    file_id = training_file(payer)
    httpx.delete(f"{simulator.url}/_sim/requests")
    with pytest.raises(openai.BadRequestError) as refused:
        payer.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=file_id, hyperparameters={"n_epochs": epochs}
        )
    assert (refused.value.code, refused.value.param) == ("invalid_type", "hyperparameters.n_epochs")
    assert httpx.get(f"{simulator.url}/_sim/requests").json()["data"] == []


LONG = json.dumps([{"role": "user", "content": "Arr " * 5000}, *HI])
SHORT = json.dumps([*HI, {"role": "assistant", "content": "Hi"}])


@pytest.mark.parametrize(
    ("line", "why"),
    [
        # The gateway counts a repeated key's last value; upstream trains the file as it is,
        # and its parser may take the first: held as the short conversation, trained as the
        # long one.
        (f'{{"messages": {LONG}, "messages": {SHORT}}}', "'messages' twice"),
        # Text to the gateway's reader (counted as its words), JSON to a lenient one: an
        # image named by its URL is trained as far more tokens than its text.
        (f'{{"messages": {LONG}, "weight": NaN}}', "lenient parser"),
        (f'\ufeff{{"messages": {LONG}}}', "lenient parser"),
    ],
    ids=["repeated", "nan", "bom"],
)
def test_a_training_line_parsers_read_apart_is_refused_before_upstream(
    gateway: ServerThread, simulator: ServerThread, line: str, why: str
) -> None:
    payer = sdk(gateway, "payer")
    data = line.encode() + b"\n"
    file_id = payer.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id
    newest = newest_upstream_job(simulator)
    with pytest.raises(openai.BadRequestError) as refused:
        payer.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    assert (refused.value.code, refused.value.param) == ("invalid_training_line", "training_file")
    assert why in refused.value.message
    assert newest_upstream_job(simulator) == newest


def later(store: redis.Redis, seconds: float) -> None:
    """Redis `seconds` later, as far as its keys' expiries go: each key with a time to live
    has it shortened by `seconds`, and is gone if that is all it had."""
    for key in store.scan_iter(count=1000):
        left = store.pttl(key)
        if left < 0:
            continue
        if left <= seconds * 1000:
            store.delete(key)
        else:
            store.pexpire(key, left - int(seconds * 1000))


def test_a_job_that_outlives_its_hold_is_charged_what_it_trained_once(
    start_gateway: GatewayFactory,
    redis_server: str,
    tmp_path: Path,
    simulator: ServerThread,
    store: redis.Redis,
    follow: Callable[[], None],
) -> None:
    # OpenAI sets no limit on a job's run: a long queue can keep one going past its hold, which
    # is then charged at its reserve when the team's next call sweeps it, and corrected to what
    # the job trained when it ends, however much later that is.
    gateway = serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False,
        fine_tuning={"poll_s": 3600, "hold_s": 0.2},
    )  # fmt: skip
    client = sdk(gateway, "payer")
    file_id = training_file(client)
    httpx.delete(f"{simulator.url}/_sim/bill")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    reserve = held(store, "payer")
    time.sleep(0.3)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # sweeps the hold
    chat = billed(simulator)
    assert spend(store, "payer") == (reserve + chat, 0)
    later(store, 8 * 86400)  # the job ends eight days after it began
    complete(simulator, job.id)
    follow()
    assert store.hlen("o1gw:fine_tuning_jobs:open") == 0
    assert billed(simulator) > chat
    assert spend(store, "payer") == (billed(simulator), 0)


def test_a_batch_naming_many_fine_tunes_asks_about_each_once_and_stops_at_a_stranger(
    gateway: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    # 50,000 lines naming as many fine-tunes took 50,000 Redis round trips (13 s) before the
    # 404 of the first, at no cost to the team repeating it.
    mine = sdk(gateway, "payer")
    job = mine.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(mine))
    name = complete(simulator, job.id)["fine_tuned_model"]
    assert mine.fine_tuning.jobs.retrieve(job.id).status == "succeeded"  # the model is the team's

    def batch_of(models: list[str]) -> dict[str, Any]:
        lines = b"".join(
            json.dumps({"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": model, "messages": HI}}).encode() + b"\n"
            for i, model in enumerate(models)
        )  # fmt: skip
        file_id = mine.files.create(file=("in.jsonl", io.BytesIO(lines)), purpose="batch").id
        return {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                "completion_window": "24h"}  # fmt: skip

    def gets() -> int:
        return int(store.info("commandstats").get("cmdstat_get", {}).get("calls", 0))

    strangers = [f"ft:gpt-4o-mini-2024-07-18:org:x:{i}" for i in range(3_000)]
    batch = batch_of([name] * 500 + ["gpt-4o-mini"] + strangers)
    before = gets()
    assert not_found(lambda: mine.batches.create(**batch))["message"] == (
        f"The model `{strangers[0]}` does not exist or you do not have access to it."
    )
    assert gets() - before < 300  # the file's own lookups, the team's, one trip's names
    # Before the stranger, a line naming another unknown model is the one refused.
    batch = batch_of([name, "gpt-nothing", *strangers])
    assert "`gpt-nothing`" in not_found(lambda: mine.batches.create(**batch))["message"]
    # The team's own fine-tune, named on every line, is served.
    assert mine.batches.create(**batch_of([name] * 300 + ["gpt-4o-mini"])).status


def wandb(project: str, entity: str | None = "ml-pirates") -> dict[str, Any]:
    settings = {"project": project, **({"entity": entity} if entity is not None else {})}
    return {"type": "wandb", "wandb": settings}


@pytest.fixture
def tracking(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    """The teams, and two allowed the W&B entity `ml-pirates`: `tracked` its project
    `parrots`, `anywhere` any project of it."""
    allowed = {"tier": "tier-5", "wandb_entity": "ml-pirates", "wandb_projects": "[parrots]"}
    teams = {**TEAMS, "tracked": allowed, "anywhere": {**allowed, "wandb_projects": "[]"}}
    return serve_teams(start_gateway, redis_server, tmp_path, teams, knobs=False)


def test_a_jobs_metrics_go_only_to_the_wandb_entity_and_projects_its_team_is_allowed(
    tracking: ServerThread, simulator: ServerThread, store: redis.Redis
) -> None:
    """The upstream account's W&B key reaches every entity of the account: a job's
    `integrations` may name only its team's entity and projects, and a team without one
    allowed may send none. Refused with a 400 before upstream, nothing held."""
    gateway = tracking
    refused = [
        ("payer", wandb("parrots"), "integrations[0]"),
        ("tracked", wandb("parrots", "rivals"), "integrations[0].wandb.entity"),
        ("tracked", wandb("parrots", None), "integrations[0].wandb.entity"),
        ("tracked", wandb("treasure"), "integrations[0].wandb.project"),
        ("tracked", {"type": "slack"}, "integrations[0].type"),
    ]
    upstream = newest_upstream_job(simulator)
    for team, integration, param in refused:
        client = sdk(gateway, team)
        with pytest.raises(openai.BadRequestError) as info:
            client.fine_tuning.jobs.create(
                model="gpt-4o-mini", training_file=training_file(client),
                integrations=[integration],  # type: ignore[list-item]
            )  # fmt: skip
        assert (info.value.code, info.value.param) == ("integration_not_allowed", param), team
        assert newest_upstream_job(simulator) == upstream
        assert held(store, team) == 0
    for team, project in (("tracked", "parrots"), ("anywhere", "treasure")):
        client = sdk(gateway, team)
        job = client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=training_file(client),
            integrations=[wandb(project)],  # type: ignore[list-item]
        )  # fmt: skip
        assert job.integrations is not None
        assert [i.wandb.project for i in job.integrations] == [project]


class Mispriced(TuningJobs):
    """Fine-tuning jobs priced by a broken rule: a cost no Redis count can hold."""

    async def priced(self, job: dict[str, Any], record: dict[str, Any], read: Any) -> Any:
        ended = await super().priced(job, record, read)
        return dataclasses.replace(ended, cost=10**17)


def test_a_job_whose_settle_redis_refuses_is_charged_its_hold_and_no_longer_followed(
    gateway: ServerThread, simulator: ServerThread, redis_server: str, store: redis.Redis
) -> None:
    """A job priced at a cost the admission script refuses as invalid: charged its hold at
    once and followed no more. Its settle had been refused at every pass, forever, each
    refusal ending the pass before the jobs after it were looked at."""
    client = sdk(gateway, "payer")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client))
    reserve = held(store, "payer")
    assert reserve > 0
    complete(simulator, job.id)
    follower_pass(redis_server, simulator, lambda gw: Mispriced(poll_s=3600))()
    assert spend(store, "payer") == (reserve, 0)
    assert store.hlen("o1gw:fine_tuning_jobs:open") == 0


@pytest.fixture
def short_lines(start_gateway: GatewayFactory, redis_server: str, tmp_path: Path) -> ServerThread:
    return serve_teams(
        start_gateway, redis_server, tmp_path, TEAMS, knobs=False,
        fine_tuning={"poll_s": 3600, "max_line_bytes": 1000},
    )  # fmt: skip


def test_a_training_file_is_held_as_read_whole_and_a_line_over_the_bound_refused(
    short_lines: ServerThread, simulator: ServerThread, store: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The training file is priced as upstream sends it, a block of lines at a time (never held
    whole): its tokens are those of the file read whole, whatever ends its lines and wherever
    the blocks cut it; an example longer than `fine_tuning.max_line_bytes` is refused, naming
    its line, before any job is made."""
    from gateway.endpoints import owned

    client = sdk(short_lines, "payer")
    rows = [
        json.dumps({"messages": [*HI, {"role": "assistant", "content": f"Hello {i}"}]}).encode()
        for i in range(30)
    ]

    def held_for(data: bytes) -> int:
        file_id = client.files.create(file=("train.jsonl", data), purpose="fine-tune").id
        before = held(store, "payer")
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        return held(store, "payer") - before

    whole = held_for(b"\n".join(rows) + b"\n")
    assert whole > 0
    monkeypatch.setattr(owned, "LINES_A_BLOCK", 200)
    assert held_for(b"\r\n".join(rows)) == whole
    assert held_for(b"\n\r\n".join(rows) + b"\r") == whole
    long = rows[0].replace(b"Hi", b"Hi" * 500)
    file_id = client.files.create(file=("train.jsonl", rows[1] + b"\n" + long), purpose="fine-tune")
    newest = newest_upstream_job(simulator)
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id.id)
    assert refused.value.code == "invalid_training_line"
    assert refused.value.response.json()["error"]["message"] == (
        "Line 2 of the job's training file cannot be accepted: it is longer than 1000 bytes, the "
        "most a line may be here."
    )
    assert newest_upstream_job(simulator) == newest
