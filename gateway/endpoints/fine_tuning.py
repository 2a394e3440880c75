"""Fine-tuning jobs, each the team's own, held at creation and charged when they end.

Creating one checks its base `model` as every endpoint checks a model (in the team's tier and
allowlist, or one of the team's own fine-tunes) and that config prices its training (a base
without a training price is not fine-tuned); its training and validation files must be the
team's; its `integrations` may report only to the team's own W&B entity and projects
(`refused_integration`). It reads the training file from upstream, a block of lines at a time
(never whole), and holds its tokens times the epochs (the request's `n_epochs`, or
`fine_tuning.auto_epochs` when it leaves them to upstream) at the base's training price, for as
long as a job may run (`fine_tuning.hold_s`). The gateway follows the job
(`runtime.tuning_jobs`) and settles it from the tokens it trained; its fine-tuned model and
result files become the team's (`tuned_models`). Listing, reading, cancelling, events and
checkpoints are the team's own jobs only, never charged (counted against the request limits). A
job names the gateway as its organization (`organization_id`), not the upstream organization
whose id every team's jobs would show; a failed job's `error`, and its events' messages, are
told as the team's calls' upstream errors are (`told_by`: of its own upstream key if it has one;
upstream's words logged).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission import pricing
from gateway.admission.plan import model_allowed
from gateway.config import ImageInputTokens
from gateway.endpoints.attempt import rebodied
from gateway.endpoints.followed import counted_before_reading, create_followed
from gateway.endpoints.owned import (
    FILE,
    Kind,
    adopt,
    as_shown,
    caller_owning,
    check_references,
    created,
    forward_owned,
    metadata_matches,
    metadata_query,
    own_list,
    take_lines,
    told_by,
)
from gateway.endpoints.route import refuse_shut_down
from gateway.endpoints.tuned_models import MODEL, fine_tuned
from gateway.server.body import lenient_only, read_json_object, repeated_key
from gateway.server.caller import identify
from gateway.server.entry import gateway_of
from gateway.teams.records import Team
from gateway.wire import errors, jsonl, validation
from gateway.wire.errors import GatewayError

FINE_TUNING_JOB = Kind(
    "fine_tuning_job", "/fine_tuning/jobs", "ftjob-", errors.fine_tuning_job_not_found
)
# The organization a job names: the gateway, as the owner of the models it lists.
ORGANIZATION = "o1-gateway"


async def create(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    payload, body = await read_json_object(request, gw.config.server.max_body_bytes)
    name, training = payload.get("model"), payload.get("training_file")
    if not isinstance(name, str) or not name:
        raise errors.missing_parameter("model")
    if not isinstance(training, str):
        raise errors.missing_parameter("training_file")
    method = pricing.training_method(payload)
    if method not in pricing.TOKEN_TRAINED_METHODS:
        raise errors.invalid_value("method.type", method, pricing.TOKEN_TRAINED_METHODS)
    validation.check_training_epochs(payload)
    refused = refused_integration(payload.get("integrations"), caller.team)
    if refused is not None:
        raise refused
    found = gw.models.get(name) or await fine_tuned(gw, caller, name)
    if found is None or not model_allowed(gw.config, caller.team, found[0]):
        raise errors.model_not_found(name)
    label, model = found
    refuse_shut_down(gw, name, label, model)
    price = gw.config.models[label].fine_tuning.training_price
    if not price:
        raise errors.not_fine_tunable(name)
    await check_references(gw, caller, body, payload)  # the training and validation files
    counted_as = await counted_before_reading(request, caller, FINE_TUNING_JOB)
    tokens = 0

    async def count(first: int, block: bytes) -> None:
        nonlocal tokens
        tokens += await asyncio.to_thread(_training_tokens, block, first, model.image_input_tokens)

    max_line = gw.config.fine_tuning.max_line_bytes
    try:
        await take_lines(gw, request, caller, training, max_line, count)
    except jsonl.LineTooLong as exc:
        raise errors.training_line_invalid(
            exc.number, f"it is longer than {exc.limit} bytes, the most a line may be here"
        ) from None
    epochs = pricing.training_epochs(payload, gw.config.fine_tuning.auto_epochs)
    reserve = pricing.training_cost(tokens * epochs, price)
    if model.upstream != name:  # a configured name: upstream fine-tunes its snapshot
        body = orjson.dumps({**payload, "model": model.upstream})
    return as_shown(await create_followed(
        request, caller, FINE_TUNING_JOB, label, reserve, gw.config.fine_tuning.hold_s, body,
        counted_as, training_price=int(price),
    ), lambda job: shown_job(job, told_by(request, caller)))  # fmt: skip


NOT_STRICT = "it is JSON only to a lenient parser (NaN, Infinity, 1e400, a byte order mark, UTF-16)"


def _training_tokens(content: bytes, first: int, images: ImageInputTokens) -> int:
    """The most tokens one epoch over (a block of, the first line `first` of) the training file
    trains (`pricing.training_file_tokens`),
    each line read as every parser reads it: upstream trains the file as it is, and a line
    giving a key twice may be trained as the value not counted here (a long conversation
    first, a short one last), one that is JSON to a lenient parser only as what its text
    does not say, so such a line is refused (400)."""
    for number, raw in enumerate(content.splitlines(), start=first):
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            if lenient_only(raw):
                # Counted as its text, it may be trained as more (an image by its URL).
                raise errors.training_line_invalid(number, NOT_STRICT) from None
            continue  # counted as its text: upstream fails the job on it
        repeated = repeated_key(raw)
        if repeated is not None:
            raise errors.training_line_invalid(number, repeated)
    return pricing.training_file_tokens(content, images)


def refused_integration(given: Any, team: Team) -> GatewayError | None:
    """Why the job's `integrations` may not go upstream, or None: each must be a Weights &
    Biases one naming the team's W&B entity (left out, upstream uses its key's default entity,
    which may be anyone's) and, when the team lists its projects, one of them."""
    if given is None:
        return None
    if not isinstance(given, list):
        return errors.integration_not_allowed("integrations", "expected an array")
    for i, entry in enumerate(given):
        where = f"integrations[{i}]"
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind != "wandb":
            return errors.integration_not_allowed(f"{where}.type", f"type {kind!r} is not served")
        if not team.wandb_entity:
            return errors.integration_not_allowed(
                where, f"team {team.name} may send no job's metrics to W&B"
            )
        wandb = entry.get("wandb")
        settings = wandb if isinstance(wandb, dict) else {}
        entity, project = settings.get("entity"), settings.get("project")
        if entity is None:
            return errors.integration_not_allowed(
                f"{where}.wandb.entity",
                "no entity named: W&B would report to its key's default entity, which may be "
                f"another team's; name team {team.name}'s, {team.wandb_entity!r}",
            )
        if entity != team.wandb_entity:
            return errors.integration_not_allowed(
                f"{where}.wandb.entity",
                f"entity {entity!r} is not team {team.name}'s ({team.wandb_entity!r})",
            )
        if not isinstance(project, str) or not project:
            return errors.integration_not_allowed(f"{where}.wandb.project", "a project is needed")
        if team.wandb_projects and project not in team.wandb_projects:
            return errors.integration_not_allowed(
                f"{where}.wandb.project",
                f"project {project!r} is not one of team {team.name}'s "
                f"({', '.join(team.wandb_projects)})",
            )
    return None


async def list_jobs(request: Request) -> Response:
    wanted = metadata_query(request.query_params)

    def keep(job: dict[str, Any]) -> bool:
        return metadata_matches(job.get("metadata"), wanted)

    return await own_list(
        request,
        FINE_TUNING_JOB,
        keep,
        count=True,
        view=lambda jobs, tell: [shown_job(j, tell) for j in jobs],
    )


async def retrieve(request: Request) -> Response:
    """The team's job; once it succeeded, its model and result files are the team's (a client
    uses them straight after, before the follower's next look)."""
    job_id = request.path_params["job_id"]
    caller = await caller_owning(request, FINE_TUNING_JOB, job_id)
    response = await forward_owned(request, FINE_TUNING_JOB, job_id, count=True, caller=caller)
    found = created(response)
    job = found or {}
    gw = gateway_of(request)
    await adopt(gw, caller, MODEL, (job.get("fine_tuned_model"),))
    await adopt(gw, caller, FILE, job.get("result_files") or ())
    return as_shown(response, lambda shown: shown_job(shown, told_by(request, caller)), found)


async def cancel(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    caller = await caller_owning(request, FINE_TUNING_JOB, job_id)
    response = await forward_owned(
        request, FINE_TUNING_JOB, job_id, "/cancel", count=True, caller=caller
    )
    return as_shown(response, lambda job: shown_job(job, told_by(request, caller)))


async def events(request: Request) -> Response:
    """The team's job's events, each message as an error of its team's is told (`told_by`):
    the event a failed job logs repeats its error's words."""
    job_id = request.path_params["job_id"]
    caller = await caller_owning(request, FINE_TUNING_JOB, job_id)
    response = await forward_owned(
        request, FINE_TUNING_JOB, job_id, "/events", count=True, caller=caller
    )
    page = _json(response) if response.status_code == 200 else None
    data = page.get("data") if isinstance(page, dict) else None
    if not isinstance(page, dict) or not isinstance(data, list):
        return response
    tell = told_by(request, caller)
    told = [tell(e) if isinstance(e, dict) else e for e in data]
    if told == data:
        return response
    return rebodied(response, orjson.dumps({**page, "data": told}), "application/json")


async def checkpoints(request: Request) -> Response:
    """The team's job's checkpoints; each is a model the team may use from then on."""
    job_id = request.path_params["job_id"]
    caller = await caller_owning(request, FINE_TUNING_JOB, job_id)
    response = await forward_owned(
        request, FINE_TUNING_JOB, job_id, "/checkpoints", count=True, caller=caller
    )
    page = _json(response) if response.status_code == 200 else None
    data = page.get("data") if isinstance(page, dict) else None
    if isinstance(data, list):
        names = [c.get("fine_tuned_model_checkpoint") for c in data if isinstance(c, dict)]
        await adopt(gateway_of(request), caller, MODEL, names)
    return response


def shown_job(job: dict[str, Any], tell: errors.Tell) -> dict[str, Any]:
    """A job naming the gateway as its organization: upstream's `organization_id` is the one
    every team shares; the error a failed one carries as `tell` tells it."""
    shown = {**job, "organization_id": ORGANIZATION} if "organization_id" in job else job
    error = job.get("error")
    if isinstance(error, dict):
        told = tell(error)
        shown = shown if told is error else {**shown, "error": told}
    return shown


def _json(response: Response) -> Any:
    try:
        return orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return None
