"""`GET /v1/models` and `GET /v1/models/{model}`: the configured models a team may use, and the
routing aliases (`auto`, ...) that reach one of them, answered by the gateway itself; and the
team's own fine-tunes (`tuned_models`), read from upstream. The list and a configured model,
answered from config and Redis without calling upstream, are not counted against request
limits; a fine-tune's read, which calls upstream, is."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed
from gateway.config import Config
from gateway.endpoints import tuned_models
from gateway.routing import retirement
from gateway.routing.aliases import DEFAULT_ALIAS
from gateway.server.body import JSON
from gateway.server.caller import Caller, identify
from gateway.server.entry import gateway_of
from gateway.wire import errors


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    today = gw.today()
    data = [_model_object(gw.config, name, today) for name in _visible(gw.config, caller, today)]
    data += await tuned_models.listed(gw, caller)
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    name = request.path_params["model"]
    if name.startswith("ft:"):
        return await tuned_models.retrieve(request, caller, name)
    today = gw.today()
    # By any of its names, as requests name it: a client pinned to a dated snapshot reads
    # when it shuts down too.
    found = gw.models.get(name)
    label = found[0] if found is not None else name
    if label not in _visible(gw.config, caller, today):
        raise errors.model_not_found(name)
    answer = {**_model_object(gw.config, label, today), "id": name}
    return Response(orjson.dumps(answer), media_type=JSON)


def _visible(config: Config, caller: Caller, today: str) -> list[str]:
    """The team's models, then each routing alias with a model the team may use: model pickers
    offer the aliases too. A model shut down that no successor serves is refused by the
    shield, so it is left out, as OpenAI's list leaves it out."""
    names = [
        name for name in config.models
        if model_allowed(config, caller.team, name)
        and not (config.retirement.shield and retirement.refused(config.models, name, today))
    ]  # fmt: skip
    aliases = dict.fromkeys(config.routing.policies)
    if caller.team.routing_policy:
        aliases[DEFAULT_ALIAS] = None
    for alias in aliases:
        policy = config.routing.policies.get(alias)
        if alias == DEFAULT_ALIAS and caller.team.routing_policy:
            policy = config.routing.policies.get(caller.team.routing_policy)
        if policy is None:
            continue
        targets = (policy.general_model, policy.mini_model, policy.preview_model)
        if any(model_allowed(config, caller.team, m) for m in targets):
            names.append(alias)
    return names


def _model_object(config: Config, name: str, today: str) -> dict[str, Any]:
    """OpenAI's model object, with its `shutdown_date` (null: none set, as for an alias); a
    model with a shutdown day also says it as `shutdown`, with its successor: the model serving
    it from that day, today's once the day has come (null: none, as with the shield off)."""
    # `created` is fixed: it describes the model, not this gateway process.
    model = config.models.get(name)
    found: dict[str, Any] = {
        "id": name, "object": "model", "created": 1725148800, "owned_by": "o1-gateway",
        "shutdown_date": model.shutdown or None if model is not None else None,
    }  # fmt: skip
    if model is not None and model.shutdown:
        found["shutdown"] = model.shutdown
        shield = config.retirement.shield
        found["successor"] = retirement.serving(config.models, name, today, shield) or None
    return found
