"""`GET /v1/models` and `GET /v1/models/{model}`: the configured models a team may use, answered
by the gateway itself, and the team's own fine-tunes (`tuned_models`), read from upstream."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed
from gateway.endpoints import tuned_models
from gateway.server.body import JSON
from gateway.server.caller import identify
from gateway.server.entry import gateway_of
from gateway.wire import errors


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    data = [
        _model_object(name)
        for name in gw.config.models
        if model_allowed(gw.config, caller.team, name)
    ]
    data += await tuned_models.listed(gw, caller)
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    name = request.path_params["model"]
    if name not in gw.config.models:
        return await tuned_models.retrieve(request, caller, name)
    if not model_allowed(gw.config, caller.team, name):
        raise errors.model_not_found(name)
    return Response(orjson.dumps(_model_object(name)), media_type=JSON)


def _model_object(name: str) -> dict[str, Any]:
    # `created` is fixed: it describes the model, not this gateway process.
    return {"id": name, "object": "model", "created": 1725148800, "owned_by": "o1-gateway"}
