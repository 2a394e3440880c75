"""The fine-tuned models a team's jobs made (`ft:<base>:<org>:<suffix>:<id>`, and a job's
checkpoints, `...:ckpt-step-<n>`), each the team's own: recorded when the gateway sees its job
succeed or its checkpoints listed.

A request naming one (chat, Responses, embeddings, legacy completions, a batch's lines, an
operator-allowed path) is served only to the team that owns it, as its base is served (the
base's tier and allowlist, limits and deployments) at the base's fine-tuned price; for any
other team it is the `404 model_not_found` of a model nobody has. Only a name the configured
models miss is looked up here, so ordinary model names cost nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed
from gateway.config import ModelConfig
from gateway.endpoints.attempt import rebodied
from gateway.endpoints.owned import Kind, forward_owned
from gateway.endpoints.route import refuse_shut_down, shut_down, shut_down_refusal
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller, identify
from gateway.server.entry import gateway_of
from gateway.wire import errors

MODEL = Kind("model", "/models", "ft:", errors.model_not_found)
# Fine-tunes `GET /v1/models` lists at most, oldest first.
MAX_LISTED = 1000
# A fine-tune's name: `ft:`, the base, the organization, a suffix of up to 64 characters, an
# id and a checkpoint's step. A longer name is no model of ours.
MAX_NAME_CHARS = 256


async def fine_tuned(gw: Gateway, caller: Caller, name: str) -> tuple[str, ModelConfig] | None:
    """The caller's team's own fine-tune `name`, as (its base's configured name, the model it
    is served as); None for any other name."""
    if not name.startswith("ft:") or len(name) > MAX_NAME_CHARS:
        return None
    found = gw.model_of(name)
    if found is None or not await gw.owners.owns(MODEL.name, caller.team.name, name):
        return None
    return found


async def fine_tunes(
    gw: Gateway, caller: Caller, names: Iterable[Any]
) -> dict[str, tuple[str, ModelConfig]]:
    """Of `names` (as request bodies give them, in order), the team's own fine-tunes, each
    looked up once, many a round trip, up to the first that is not the team's: the request
    naming it is refused there, so none named first after it is asked about (a batch's lines
    may name thousands)."""
    named: dict[str, tuple[str, ModelConfig]] = {}
    for name in names:
        if (
            isinstance(name, str)
            and name.startswith("ft:")
            and len(name) <= MAX_NAME_CHARS
            and name not in named
        ):
            model = gw.model_of(name)
            if model is not None:
                named[name] = model
    missing = await gw.owners.not_owned(caller.team.name, ((MODEL.name, n) for n in named))
    if missing is None:
        return named
    found: dict[str, tuple[str, ModelConfig]] = {}
    for name, model in named.items():
        if name == missing[1]:
            break
        found[name] = model
    return found


async def listed(gw: Gateway, caller: Caller) -> list[dict[str, Any]]:
    """The team's fine-tunes whose base it may use, as `GET /v1/models` lists models; not
    those the shield refuses, from their base's shutdown day."""
    out: list[dict[str, Any]] = []
    for name, made in await gw.owners.made(MODEL.name, caller.team.name, MAX_LISTED):
        found = gw.model_of(name)
        if found is not None and model_allowed(gw.config, caller.team, found[0]):
            if shut_down(gw, found[1]):
                continue
            parts = name.split(":")
            owner = parts[2] if len(parts) > 2 else caller.team.name  # upstream's organization
            out.append({
                "id": name, "object": "model", "created": int(made), "owned_by": owner,
                # A fine-tune is shut down with its base, as upstream lists it.
                "shutdown_date": found[1].shutdown or None,
            })  # fmt: skip
    return out


async def retrieve(request: Request, caller: Caller, name: str) -> Response:
    """The team's fine-tune as upstream describes it (counted against the team's request
    limits, as every call upstream is). From its base's shutdown day the shield refuses it
    here, as it refuses every request naming it and the list leaves it out: upstream no longer
    has it either, so reading it there would only spend the team's limits on a 404."""
    gw = gateway_of(request)
    found = await fine_tuned(gw, caller, name)
    if found is None or not model_allowed(gw.config, caller.team, found[0]):
        raise errors.model_not_found(name)
    refuse_shut_down(gw, name, *found)
    return await forward_owned(request, MODEL, name, count=True, caller=caller)


async def delete(request: Request) -> Response:
    """`DELETE /v1/models/{model}`: the team's own fine-tune, deleted upstream and forgotten.

    From its base's shutdown day too, unlike a read: the gateway's day may run ahead of
    upstream's (`retirement.today`), and the team may want it gone, so only upstream can say
    whether it still has it. One it has no more is forgotten, and its 404 says why."""
    gw = gateway_of(request)
    caller = await identify(gw, request)
    name = request.path_params["model"]
    found = await fine_tuned(gw, caller, name)
    if found is None:
        raise errors.model_not_found(name)
    response = await forward_owned(request, MODEL, name, count=True, caller=caller)
    gone = shut_down_refusal(gw, name, *found) if response.status_code == 404 else None
    if gone is not None:
        return rebodied(response, gone.body(), "application/json")
    return response
