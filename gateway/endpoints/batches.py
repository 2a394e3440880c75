"""Batches, each the team's own, held at creation and charged when they end.

Creating one reads its input file (the team's own) as upstream sends it, a block of lines at a
time (`owned.file_lines`), never held whole, and checks every line as its endpoint would: the
model in the team's tier and allowlist (or the team's own fine-tune) and priced. It holds every
line's worst case at half price (upstream's batch price) for as long as the batch may run; the
gateway follows the batch (`runtime.batch_jobs`) and settles it from its output file when it
ends. Reading, listing and cancelling are the team's own batches only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import WeeklyCap, model_allowed, shape
from gateway.admission.pricing import batch_line_cost, batch_line_worst, chat_audio, worst_usage
from gateway.config import ModelConfig
from gateway.endpoints.followed import counted_before_reading, create_followed
from gateway.endpoints.owned import (
    FILE,
    Kind,
    adopt,
    as_shown,
    caller_owning,
    check_all_owned,
    check_owned,
    created,
    forward_owned,
    own_list,
    references,
    take_lines,
    told_by,
)
from gateway.endpoints.tuned_models import fine_tunes
from gateway.routing import retirement
from gateway.runtime.batch_jobs import OUTPUT_KEPT_S, BatchJobs
from gateway.runtime.gateway import Gateway
from gateway.server.body import read_json_object, repeated_key
from gateway.server.caller import Caller, identify
from gateway.server.entry import gateway_of
from gateway.wire import errors, jsonl, validation
from gateway.wire.errors import GatewayError
from gateway.wire.references import unowned_reference

log = logging.getLogger("gateway")
BATCH = Kind("batch", "/batches", "batch_", errors.batch_not_found)
# The endpoints whose lines the gateway can price; others are refused.
BATCHED = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations")


async def create(request: Request) -> Response:
    gw = gateway_of(request)
    caller = await identify(gw, request)
    payload, body = await read_json_object(request, gw.config.server.max_body_bytes)
    input_file, endpoint = payload.get("input_file_id"), payload.get("endpoint")
    if not isinstance(input_file, str):
        raise errors.missing_parameter("input_file_id")
    if endpoint not in BATCHED:
        raise errors.invalid_value("endpoint", str(endpoint), BATCHED)
    await check_owned(gw, caller, FILE, input_file)
    counted_as = await counted_before_reading(request, caller, BATCH)
    priced = _Priced(gw, caller, str(endpoint))
    max_line = gw.config.batches.max_line_bytes
    try:
        await take_lines(gw, request, caller, input_file, max_line, priced.add)
    except jsonl.LineTooLong as exc:
        raise errors.batch_line_invalid(
            exc.number, f"it is longer than {exc.limit} bytes, the most a line may be here"
        ) from None
    reserve, named, limited = priced.total()
    if not limited:
        raise errors.batch_file_empty()
    return await create_followed(
        request, caller, BATCH, limited[0], reserve, gw.config.batches.hold_s, body,
        counted_as, limited=limited, models=named,
        output_expires_after=payload.get("output_expires_after"),
    )  # fmt: skip


class _Priced:
    """A batch's input file priced as it is read, a block of lines at a time, refused as it
    would be read whole: a line that cannot be read at once; else, once every line is read,
    the first line that cannot be priced (`_worst_case`), else the first naming an object not
    served (`_named_objects`), else the first object named that is not the team's. Reading,
    parsing and pricing a file of tens of thousands of lines takes seconds, done even for a
    batch the team cannot afford: off the event loop, which serves every team."""

    __slots__ = ("caller", "endpoint", "gw", "limited", "named", "refused", "reserve")

    def __init__(self, gw: Gateway, caller: Caller, endpoint: str) -> None:
        self.gw, self.caller, self.endpoint = gw, caller, endpoint
        self.reserve = 0
        self.named: set[str] = set()
        self.limited: dict[str, None] = {}
        # The first refusal of each check after reading, in the order they are made.
        self.refused: list[GatewayError | None] = [None, None, None]

    async def add(self, first: int, block: bytes) -> None:
        """The lines of `block`, the first of which is line `first` of the file."""
        gw, caller = self.gw, self.caller
        numbers, lines = await asyncio.to_thread(
            _input_lines, block, first, gw.config.server.max_json_depth
        )
        priced, served, owned = self.refused
        if priced is not None:
            return  # it stands, unless a line that cannot be read follows
        tuned = await fine_tunes(gw, caller, [line["body"].get("model") for line in lines])
        try:
            reserve, named, limited = await asyncio.to_thread(
                _worst_case, gw, caller, self.endpoint, lines, tuned, numbers
            )
        except GatewayError as exc:
            self.refused[0] = exc
            return
        self.reserve += reserve
        self.named.update(named)
        self.limited.update(dict.fromkeys(limited))
        if served is None:
            try:
                objects = await asyncio.to_thread(_named_objects, lines, numbers)
            except GatewayError as exc:
                self.refused[1] = exc
                return
            if owned is None:
                try:
                    await check_all_owned(gw, caller, objects)  # what each line names
                except GatewayError as exc:
                    self.refused[2] = exc

    def total(self) -> tuple[int, list[str], list[str]]:
        """Every line's worst case at half price, every model the lines name, and every
        configured model whose limits count the batch, the first line's first (`_worst_case`);
        the first refusal, if any."""
        for refusal in self.refused:
            if refusal is not None:
                raise refusal
        return self.reserve, sorted(self.named), list(self.limited)


def _named_objects(lines: list[dict[str, Any]], numbers: list[int]) -> list[tuple[Kind, str]]:
    """The team's objects the lines name (`numbers`: theirs in the file); a line naming an
    object no team owns here is refused."""
    for number, line in zip(numbers, lines, strict=True):
        unowned = unowned_reference(line["body"])
        if unowned is not None:
            raise errors.batch_line_invalid(number, f"its {unowned} names an object not served")
    return references([line["body"] for line in lines])


def _input_lines(
    content: bytes, first: int, max_depth: int
) -> tuple[list[int], list[dict[str, Any]]]:
    """The lines of (a block of, the first line `first` of the file) a batch's input file,
    each a request whose body the gateway can read as its endpoint reads one sent inline
    (`max_depth`: `server.max_json_depth`): it is priced by walking it, and goes upstream as
    the file has it, not written again by the gateway. Each line's number in the file with it
    (blank lines are left out, and counted)."""
    numbers: list[int] = []
    lines: list[dict[str, Any]] = []
    for number, raw in enumerate(content.splitlines(), start=first):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise errors.batch_line_invalid(number, "it is not JSON") from None
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            raise errors.batch_line_invalid(number, "it has no request body")
        if validation.too_deep(line["body"], max_depth) is not None:
            raise errors.batch_line_invalid(
                number, f"its body nests deeper than {max_depth} levels"
            )
        # Upstream reads the file as it is: which of a repeated key's values counts is its
        # parser's choice, not necessarily the value priced here.
        repeated = repeated_key(raw)
        if repeated is not None:
            raise errors.batch_line_invalid(number, repeated)
        numbers.append(number)
        lines.append(line)
    return numbers, lines


def _worst_case(
    gw: Gateway,
    caller: Caller,
    endpoint: str,
    lines: list[dict[str, Any]],
    tuned: dict[str, tuple[str, ModelConfig]],
    numbers: list[int],
) -> tuple[int, list[str], list[str]]:
    """Every line's worst case at half price, every model the lines name (a fine-tune by its
    own name, priced as such), and every configured model whose limits count the batch, the
    first line's first: each line's model must be one the team may use (`tuned`: the team's
    own fine-tunes they name), priced, and not one the team's or the key's limits cap at some
    messages a week. `numbers`: the lines' in the file."""
    reserve, named = 0, set()
    limited: dict[str, None] = {}
    today = gw.today()
    weekly: dict[str, tuple[WeeklyCap, ...]] = {}
    for number, line in zip(numbers, lines, strict=True):
        if line.get("url") != endpoint:
            raise errors.batch_line_invalid(number, f"its url is not the batch's {endpoint}")
        body: dict[str, Any] = line["body"]
        _check_line(number, endpoint, body)
        if body.get("web_search_options") is not None:
            # Billed by the search beside the tokens: the batch's settle reads tokens only.
            raise errors.batch_line_invalid(
                number, "web_search_options (searches billed by the call) are not batched here"
            )
        audio = chat_audio(body) if endpoint == "/v1/chat/completions" else None
        if audio is not None:
            raise errors.batch_line_invalid(number, f"its {audio} asks for audio, not priced here")
        default = "omni-moderation-latest" if endpoint == "/v1/moderations" else None
        name = body.get("model", default)
        found = (gw.models.get(name) or tuned.get(name)) if isinstance(name, str) else None
        if found is None or not model_allowed(gw.config, caller.team, found[0]):
            raise errors.model_not_found(str(name))
        label, model = found
        if endpoint != "/v1/moderations" and not model.priced:
            raise errors.model_not_found(str(name))
        caps = weekly.get(label)
        if caps is None:
            caps = weekly[label] = shape(
                gw.config, caller.team, caller.key, label, endpoint, counts_tokens=False
            ).weekly
        if caps:
            # Every line is a message upstream, and the batch is admitted as one request: a
            # file of thousands would pass a cap of tens.
            raise errors.batch_line_invalid(
                number, f"its model {name} is capped at {caps[0].cap} messages a week "
                "(a batch's lines would pass the cap): send it as requests",
            )  # fmt: skip
        retired_as = retirement.retired(gw.config.models, label, today) if model.shutdown else None
        if retired_as is not None and gw.config.retirement.shield:
            # The file goes upstream as it is, where every such line would fail. The successor
            # is named only where it stands in and a line naming it would pass: not for a
            # fine-tune (its base's successor is another model), nor for a team that chat
            # serves it only as the model it replaces.
            advised = (
                retired_as.new
                and name not in tuned
                and model_allowed(gw.config, caller.team, retired_as.new)
            )
            # Asked as chat asks it in its stead: a line goes upstream as the file has it.
            effort = f" at reasoning_effort {retired_as.effort}" if retired_as.effort else ""
            instead = f"; name {retired_as.new}{effort} instead" if advised else ""
            raise errors.batch_line_invalid(
                number, f"its model {name} was shut down on {retired_as.shutdown}{instead}"
            )
        worst = batch_line_worst(endpoint, body, model)
        if worst is None:
            raise errors.invalid_value("endpoint", endpoint, BATCHED)
        prompt, completion = worst
        reserve += batch_line_cost(model.price, worst_usage(model.price, prompt, completion))
        limited[label] = None
        named.add(name if name in tuned else label)
    return reserve, sorted(named), list(limited)


def _check_line(number: int, endpoint: str, body: dict[str, Any]) -> None:
    """The counts a line's worst case reads (`max_tokens`, `n`, `best_of`, a prompt's tokens),
    as the endpoint checks them inline: one of another type (true, "4000", 1.0) is held as
    the default while a lenient upstream may read it as the count it spells. The rest of a
    line's shape is upstream's to refuse, in the batch's error file."""
    try:
        if endpoint == "/v1/chat/completions":
            validation.check_chat_counts(body)
        elif endpoint == "/v1/completions":
            validation.check_completions_counts(body)
        elif endpoint == "/v1/embeddings":
            validation.check_embeddings_counts(body)
    except GatewayError as exc:
        why = exc.message.rstrip(".")
        raise errors.batch_line_invalid(number, f"its {exc.param}: {why}") from None


async def list_batches(request: Request) -> Response:
    return await own_list(
        request, BATCH, count=True, view=lambda found, tell: [shown_batch(b, tell) for b in found]
    )


async def retrieve(request: Request) -> Response:
    """The team's batch; once it has output, its files are the team's (a client reads them
    straight after, before the follower's next look): for the longest upstream keeps them,
    until the follower, settling the batch, records how long it does."""
    gw = gateway_of(request)
    batch_id = request.path_params["batch_id"]
    caller = await caller_owning(request, BATCH, batch_id)
    response = await forward_owned(request, BATCH, batch_id, count=True, caller=caller)
    found = created(response)
    answer = found or {}
    files = (answer.get("output_file_id"), answer.get("error_file_id"))
    await adopt(gw, caller, FILE, files, time.time() + OUTPUT_KEPT_S)
    if answer.get("status") in BatchJobs.ended_statuses and gw.follower is not None:
        # Settled now, from its output file, before its client (which learns the file's id
        # here) can read and delete it: the follower's next look, up to batches.poll_s away,
        # would find it gone and charge the whole hold.
        try:
            await gw.follower.settle_ended(BatchJobs.name, batch_id)
        except (GatewayError, RedisError, OSError) as exc:
            log.warning("batch %s: not settled as it was read (%r)", batch_id, exc)
    return as_shown(response, lambda b: shown_batch(b, told_by(request, caller)), found)


def shown_batch(batch: dict[str, Any], tell: errors.Tell) -> dict[str, Any]:
    """A batch as its team sees it: the errors it failed with as `tell` tells them, upstream's
    words logged on each read that shows them (a client polls a batch until it ends, seldom
    after; a batch's errors are few). Upstream words one for the organization the batches
    belong to: "Enqueued token limit reached for gpt-4o in organization org-... Limit: 90,000
    enqueued tokens"."""
    listed = batch.get("errors")
    if not isinstance(listed, dict) or not isinstance(listed.get("data"), list):
        return batch
    found = listed["data"]
    told = [tell(e) if isinstance(e, dict) else e for e in found]
    return batch if told == found else {**batch, "errors": {**listed, "data": told}}


async def cancel(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    return await forward_owned(request, BATCH, batch_id, "/cancel", count=True)
