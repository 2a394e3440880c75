"""What every endpoint of an object a team makes upstream shares (files, stored chat
completions, vector stores): the owner check, the call for a checked id, the count against
the team's request limits, and a list of the team's own objects.

Upstream keeps every team's objects under the gateway's one key, so upstream would show any
of them to anyone: the gateway records who made each (`objects.ownership`) and answers
another team's id, like an id it never recorded, with the 404 upstream gives for a missing
one. The upstream path is made from the id that was checked, never taken as spelled; a list
is made from the team's own ids, each object read from upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from gateway.endpoints.attempt import Attempt, Whole, rebodied
from gateway.runtime.gateway import Gateway
from gateway.server.caller import Caller, identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.upstream.contract import StreamedBody
from gateway.wire import errors, jsonl, pages
from gateway.wire.errors import GatewayError
from gateway.wire.headers import new_request_id
from gateway.wire.references import fields

log = logging.getLogger("gateway")
# Ids are short (`file-` and 22 characters, `chatcmpl-` and 29): a longer one is no id of ours.
MAX_ID_CHARS = 128
# Upstream reads a list makes at once.
LIST_CONCURRENCY = 16
# Upstream reads one count against the team's request limits covers: a full page and the one
# more read that says whether more follow. A filter matching few of a team's many objects
# reads many more for a page (free uploads, then thousands of reads against the upstream key
# every team shares): each further `READS_A_COUNT` reads count once more, before they are made.
READS_A_COUNT = pages.MAX_PAGE + 1
# About how many bytes of a file's lines `file_lines` hands on at once: each block is priced in
# one hop to a thread, so the hops cost per megabyte, not per line.
LINES_A_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of object, as its endpoints and its owner records name it."""

    name: str  # in the owner records: "file"
    upstream: str  # its path upstream, relative to the base URL: "/files"
    prefix: str  # how upstream's ids of the kind begin: "file-"
    not_found: Callable[[str], GatewayError]  # upstream's 404 for a missing one
    default_limit: int = pages.DEFAULT_PAGE
    max_limit: int = pages.MAX_PAGE  # the largest `limit` upstream takes (400 above it)
    default_order: str = "desc"
    # The most objects a page holds here, whatever `limit` asks: each is read from upstream.
    max_page: int = pages.MAX_PAGE
    # Its list takes a `before` cursor too (the page just before that id), as upstream's does.
    pages_back: bool = False
    # The gateway keeps its client's view of some (`objects.chat_views`), forgotten with it.
    viewed: bool = False
    # Its `expires_at` is when upstream deletes it (a file's; a batch's is when its window
    # closes, and the batch stays): its owner record goes with it (`Owners.record`).
    deleted_when_expired: bool = False


# OpenAI pages files 10,000 at a time (the default and the largest `limit`); a team's page
# here is read object by object from upstream, so it is cut at 100: a larger `limit` is
# answered with 100 and `has_more`, which clients follow with `after` as for every list.
MAX_FILES_LIMIT = 10_000
MAX_FILES_PAGE = 100
FILE = Kind(
    "file",
    "/files",
    "file-",
    errors.file_not_found,
    default_limit=MAX_FILES_LIMIT,
    max_limit=MAX_FILES_LIMIT,
    max_page=MAX_FILES_PAGE,
    deleted_when_expired=True,
)
VECTOR_STORE = Kind(
    "vector_store", "/vector_stores", "vs_", errors.vector_store_not_found, pages_back=True
)
# Body fields that name a team's object, anywhere in a request (a chat message's file part, a
# Responses `input_file` item, a `file_search` tool's stores, a batch, a vector store).
REFERENCES: dict[str, Kind] = {
    "file_id": FILE,
    "file_ids": FILE,
    "input_file_id": FILE,
    "training_file": FILE,
    "validation_file": FILE,
    "vector_store_id": VECTOR_STORE,
    "vector_store_ids": VECTOR_STORE,
}
# Every one of those names holds one of these: a body without them names no object, unless
# it spells a name with escapes (`"file\u005fid"` is `"file_id"` to every JSON parser).
_MARKERS = (b"file_id", b'"training_file', b'"validation_file', b"vector_store_id", b"\\u")


async def check_references(gw: Gateway, caller: Caller, body: bytes, payload: Any) -> None:
    """Every object a request body names must be the caller's team's: the 404 of a missing
    one otherwise, before anything reaches upstream. Bodies that name none (nearly all) cost a
    byte search."""
    if not any(marker in body for marker in _MARKERS):
        return
    await check_all_owned(gw, caller, references(payload))


def references(payload: Any) -> list[tuple[Kind, str]]:
    """The objects a JSON value names, at any depth."""
    found: list[tuple[Kind, str]] = []
    for name, value in fields(payload, REFERENCES):
        named = value if isinstance(value, list) else [value]
        found += [(REFERENCES[name], v) for v in named if isinstance(v, str)]
    return found


async def caller_owning(request: Request, kind: Kind, object_id: str) -> Caller:
    """The caller, if its team owns `object_id`; the kind's 404 otherwise."""
    gw = gateway_of(request)
    caller = await identify(gw, request)
    await check_owned(gw, caller, kind, object_id)
    return caller


async def check_owned(gw: Gateway, caller: Caller, kind: Kind, object_id: str) -> None:
    if len(object_id) > MAX_ID_CHARS:
        raise kind.not_found(object_id[:64] + "...")
    if not await gw.owners.owns(kind.name, caller.team.name, object_id):
        raise kind.not_found(object_id)


async def check_all_owned(gw: Gateway, caller: Caller, named: Iterable[tuple[Kind, str]]) -> None:
    """`check_owned` of every object named (the first not the team's answers its 404), each
    looked up once, many a round trip."""
    kinds: dict[tuple[str, str], Kind] = {}
    for kind, object_id in named:
        if len(object_id) > MAX_ID_CHARS:
            raise kind.not_found(object_id[:64] + "...")
        kinds.setdefault((kind.name, object_id), kind)
    missing = await gw.owners.not_owned(caller.team.name, kinds)
    if missing is not None:
        raise kinds[missing].not_found(missing[1])


async def file_lines(
    gw: Gateway, request: Request, caller: Caller, file_id: str, max_line: int
) -> AsyncGenerator[tuple[int, bytes]]:
    """A file's lines (the caller's team's file: checked already), read from upstream as they
    come, in blocks of whole lines of about `LINES_A_BLOCK` bytes, each with the number of
    its first line (from 1; blank lines are counted): what is held at once is a block and a
    line, never the file. `jsonl.LineTooLong` for a line over `max_line` bytes; the 404 of a
    missing file when upstream has none. Close it (`contextlib.aclosing`) when stopping early:
    that lets go of upstream's answer."""
    headers = gw.upstream_headers(request.scope["headers"], caller.team)
    resp = await gw.upstream.send("GET", f"{FILE.upstream}/{file_id}/content", b"", headers, b"")
    try:
        if resp.status != 200:
            raise FILE.not_found(file_id)
        read = jsonl.blocks(resp.iter_chunks(), max_line, LINES_A_BLOCK)
        async with contextlib.aclosing(read):
            async for numbered in read:
                yield numbered
    finally:
        await resp.close()


async def take_lines(
    gw: Gateway,
    request: Request,
    caller: Caller,
    file_id: str,
    max_line: int,
    take: Callable[[int, bytes], Awaitable[None]],
) -> None:
    """`file_lines` given to `take` block by block, in order; upstream's answer let go of
    however it ends. The next block is read once the last is taken: read while a thread prices
    the last, both would wait on the one interpreter lock, and the file take longer."""
    async with contextlib.aclosing(file_lines(gw, request, caller, file_id, max_line)) as read:
        async for first, block in read:
            await take(first, block)


def attempt_for(request: Request, caller: Caller, path: str) -> Attempt:
    """A call to the default upstream, once, as the pass-through makes it."""
    gw = gateway_of(request)
    return Attempt(gw, request, exchange_of(request.scope), caller, path, model=None)


def told_by(request: Request, caller: Caller) -> errors.Tell:
    """How upstream's errors in one of the team's objects (a failed batch's, a failed job's)
    are told to the team, as its calls' are (`Attempt.told`): of its own upstream key if it
    has one, upstream's words to the operator's log."""
    return attempt_for(request, caller, "").told


async def counted(attempt: Attempt, *, budget: bool = False) -> None:
    """Count the call against the team's request limits; nothing is charged. A free call is
    not refused for the budget: a team that spent it, or whose calls in flight hold the rest
    (a batch's hold), still reads, downloads, cancels and deletes what it has. `budget`: refused
    too when nothing is left of it (`counted_making`; a count before work a hold charges)."""
    gw, caller = attempt.gw, attempt.caller
    if not gw.config.admission.enabled:
        return
    shape = gw.plan_shapes().get(
        caller.team, caller.key, "", endpoint=attempt.exchange.endpoint, counts_tokens=False
    )
    plan = shape.plan(gw.new_hold_id(), est_tokens=0, reserve=0)
    if not budget:
        plan = plan.free()
    await attempt.admit(plan, None, 0)
    if attempt.ticket is not None:
        attempt.ticket.settle(None)


async def counted_making(attempt: Attempt) -> None:
    """`counted` for a free call that makes an object (a file, a vector store): refused, as
    what costs money is, once nothing is left of the budget (upstream bills a vector store's
    storage for as long as it is kept)."""
    await counted(attempt, budget=True)


class CountedReads:
    """Upstream reads one request makes besides its own call (a conversation read back, every
    page of a response's items), counted as a list's are: the request's own count covers the
    first `READS_A_COUNT`, and each further `READS_A_COUNT` count once more, before they are
    made. `attempt`, the request's counted call, answers with what the latest count left."""

    __slots__ = ("attempt", "caller", "made", "path", "request")

    def __init__(
        self, request: Request, caller: Caller, path: str, attempt: Attempt | None = None
    ) -> None:
        self.request, self.caller, self.path, self.attempt = request, caller, path, attempt
        self.made = 0

    async def one(self) -> None:
        """Before one more read: counted, if its count is due (the 429 over the limit)."""
        if self.made and self.made % READS_A_COUNT == 0:
            further = attempt_for(self.request, self.caller, self.path)
            try:
                await counted(further)
            except GatewayError:
                if self.attempt is not None:
                    self.attempt.ticket = None  # settled: the refusal says what is left
                raise
            if self.attempt is not None:
                self.attempt.ticket = further.ticket
        self.made += 1


async def create_owned(
    attempt: Attempt,
    kind: Kind,
    body: bytes | StreamedBody,
    admit: Callable[[Attempt], Awaitable[None]],
) -> tuple[Response, dict[str, Any] | None]:
    """Admit the call (`admit`), forward `body` once, and record the object upstream answers
    with as the caller's team's; the answer, and the object (None if none was made)."""
    try:
        await admit(attempt)
        response = await attempt.forward(body, stream=False)
    except GatewayError as exc:
        attempt.failed(exc)
        raise
    answer = created(response)
    if answer is not None:
        team = attempt.caller.team.name
        try:
            expires_at = answer.get("expires_at") if kind.deleted_when_expired else None
            await attempt.gw.owners.record(kind.name, team, answer["id"], made_now(), expires_at)
        except (RedisError, OSError) as exc:
            # Upstream made it (a job runs, and is billed): the client is told so, where a 500
            # would be sent again and make another. The team reaches it once an admin assigns
            # it (`POST /admin/objects/{kind}/{id}`).
            log.error(
                "cannot record %s %s as team %s's (assign it): %r", kind.name, answer["id"],
                team, exc,
            )  # fmt: skip
    return response, answer


async def forward_owned(
    request: Request,
    kind: Kind,
    object_id: str,
    suffix: str = "",
    *,
    body: bytes = b"",
    count: bool = False,
    caller: Caller | None = None,
    stream: bool | None = None,
) -> Response:
    """Call upstream about one object the caller's team owns (checked already when `caller`
    is given): at `{kind.upstream}/{object_id}{suffix}`, once; `stream=True` relays a 200's
    body as it comes (a file's content). A successful delete, or an object upstream no longer
    has, is forgotten."""
    gw = gateway_of(request)
    if caller is None:
        caller = await caller_owning(request, kind, object_id)
    attempt = attempt_for(request, caller, f"{kind.upstream}/{object_id}{suffix}")
    try:
        if count:
            await counted(attempt)
        response = await attempt.forward(body, stream=stream)
    except GatewayError as exc:
        attempt.failed(exc)
        raise
    status = response.status_code
    if status == 404 or (status == 200 and request.method == "DELETE" and not suffix):
        await forget(gw, kind, caller.team.name, object_id)
    return response


async def forget(gw: Gateway, kind: Kind, team: str, object_id: str) -> None:
    """An object deleted, or that upstream no longer has (expired, deleted around the
    gateway): its owner record and what else the gateway keeps of it."""
    await gw.owners.forget(kind.name, team, object_id)
    if kind.viewed:
        await gw.chat_views.delete(object_id)


def created(response: Response) -> dict[str, Any] | None:
    """The object a successful create answered with (it has an id), or None."""
    if response.status_code != 200:
        return None
    try:
        answer = orjson.loads(bytes(response.body))
    except orjson.JSONDecodeError:
        return None
    if isinstance(answer, dict) and isinstance(answer.get("id"), str):
        return answer
    return None


def as_shown(
    response: Response,
    view: Callable[[dict[str, Any]], dict[str, Any]],
    found: dict[str, Any] | None = None,
) -> Response:
    """An object's answer as `view` shows it to its team (`view` returns the object it is
    given when it changes nothing); `found`: the object, when its caller has read it already
    (`created`)."""
    found = found if found is not None else created(response)
    seen = view(found) if found is not None else None
    if seen is None or seen is found:
        return response
    return rebodied(response, orjson.dumps(seen), "application/json")


async def adopt(
    gw: Gateway, caller: Caller, kind: Kind, ids: Iterable[Any], expires_at: float | None = None
) -> None:
    """What an object of the team's made upstream (a batch's output files, a job's model) is
    the team's too: each id recorded, unless it is already (`expires_at`: when upstream deletes
    them, if it does)."""
    team = caller.team.name
    for object_id in ids:
        if isinstance(object_id, str) and not await gw.owners.owns(kind.name, team, object_id):
            await gw.owners.record(kind.name, team, object_id, made_now(), expires_at)


def metadata_query(query: Mapping[str, str]) -> dict[str, str]:
    """The `metadata[KEY]=VALUE` filters of a list's query."""
    return {
        name[len("metadata[") : -1]: value
        for name, value in query.items()
        if name.startswith("metadata[") and name.endswith("]")
    }


def metadata_matches(stored: Any, wanted: dict[str, str]) -> bool:
    if not wanted:
        return True
    return isinstance(stored, dict) and all(stored.get(k) == v for k, v in wanted.items())


def made_now() -> float:
    """An object's place in its team's list: when the gateway saw it made, to the microsecond.
    Upstream's `created_at` is whole seconds, so objects made in one second would list in the
    order of their ids instead of the order they were made."""
    return time.time()


async def own_list(
    request: Request,
    kind: Kind,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    *,
    count: bool = False,
    prepare: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
    view: Callable[[list[dict[str, Any]], errors.Tell], list[dict[str, Any]]] | None = None,
) -> Response:
    """A list page of the caller's team's own objects (those `keep` says match the query's
    filters), each read from upstream (and shown as `view` says, upstream's errors told as the
    `errors.Tell` it is given tells them); ids upstream no longer has
    are forgotten. `prepare` is given each batch of objects read before `keep` judges them:
    what it and `view` need of them besides (the gateway's own records), fetched at once.
    `has_more` says whether one more matching object follows. `count`: counted against the
    team's request limits, once and once more for each `READS_A_COUNT` further reads."""
    gw = gateway_of(request)
    caller = await identify(gw, request)
    query = dict(request.query_params)
    limit, order, after = pages.cursor(
        query, kind.default_limit, kind.max_limit, kind.default_order
    )
    limit = min(limit, kind.max_page)
    before = query.get("before") if kind.pages_back and after is None else None
    if before is not None:
        # The page just before `before`: walked away from it in the other order, then turned.
        order, after = ("asc" if order == "desc" else "desc"), before
    attempt = attempt_for(request, caller, kind.upstream)
    try:
        if count:
            await counted(attempt)
        found = await _collect(attempt, kind, limit, order, after, keep, prepare, count)
    except _Refused as refused:
        raise refused.refusal from None  # its own limits, not those of the list's first count
    except GatewayError as exc:
        attempt.failed(exc)
        raise
    if isinstance(found, tuple):  # upstream failed to read one: its answer, as it came
        status, headers, content = found
        return attempt.relayed(content, status, attempt.client_headers(headers))
    objects, last_count = found.objects, found.last_count
    data = objects[:limit] if before is None else objects[:limit][::-1]
    if view is not None:
        data = view(data, attempt.told)
    # Stopped short by the team's limit, the page ends at its last match: where the next
    # begins, as clients (the SDK among them) page on from a page's last object.
    page = pages.listed(data, len(objects) > limit or found.stopped)
    own = {"x-request-id": new_request_id()}
    ticket = last_count.ticket if last_count is not None else attempt.ticket
    if ticket is not None:
        own.update(ticket.headers)
    return Response(orjson.dumps(page), media_type="application/json", headers=own)


@dataclass(frozen=True, slots=True)
class _Found:
    objects: list[dict[str, Any]]  # the matching ones, in the list's order
    stopped: bool  # the team's limit stopped the reads before the page was full
    last_count: Attempt | None  # the latest count of further reads, if any was made


class _Refused(Exception):
    """A list's further reads refused by the team's limits before any match was found."""

    def __init__(self, refusal: GatewayError) -> None:
        super().__init__(refusal)
        self.refusal = refusal


async def _collect(
    attempt: Attempt,
    kind: Kind,
    limit: int,
    order: str,
    after: str | None,
    keep: Callable[[dict[str, Any]], bool] | None,
    prepare: Callable[[list[dict[str, Any]]], Awaitable[None]] | None,
    count: bool,
) -> _Found | Whole:
    """Up to `limit + 1` matching objects after `after`, each `READS_A_COUNT` reads past the
    first counted once more (`count`) before they are read: over the team's limit, those found
    so far (stopped), or its 429 when there are none; or the first failed upstream read."""
    gw, team = attempt.gw, attempt.caller.team.name
    found: list[dict[str, Any]] = []
    cursor = after
    reads, covered = 0, READS_A_COUNT
    last_count: Attempt | None = None
    while True:
        wanted = min(limit + 1 - len(found), covered - reads)
        if wanted <= 0:
            if count:
                further = attempt_for(attempt.request, attempt.caller, kind.upstream)
                try:
                    await counted(further)
                except GatewayError as exc:
                    if not found:
                        raise _Refused(exc) from None
                    return _Found(found, True, last_count)
                last_count = further
            covered += READS_A_COUNT
            continue
        ids, more = await gw.owners.page(kind.name, team, cursor, wanted, order)
        if not ids:
            return _Found(found, False, last_count)
        reads += len(ids)
        batch = []
        for object_id, read in zip(ids, await _read_all(attempt, kind, ids), strict=True):
            if isinstance(read, tuple):
                return read
            if read is None:
                await forget(gw, kind, team, object_id)
            else:
                batch.append(read)
        if prepare is not None and batch:
            await prepare(batch)
        found.extend(read for read in batch if keep is None or keep(read))
        if len(found) > limit or not more:
            return _Found(found, False, last_count)
        cursor = ids[-1]


async def _read_all(
    attempt: Attempt, kind: Kind, ids: list[str]
) -> list[dict[str, Any] | Whole | None]:
    """Each object as upstream has it; None for one it no longer has; a failed read whole."""
    gw = attempt.gw
    headers = attempt.headers_for_upstream()
    gate = asyncio.Semaphore(LIST_CONCURRENCY)

    async def read(object_id: str) -> dict[str, Any] | Whole | None:
        async with gate:
            resp = await gw.upstream.send("GET", f"{kind.upstream}/{object_id}", b"", headers, b"")
            try:
                content = await resp.read()
            finally:
                await resp.close()
        if resp.status == 404:
            return None
        if resp.status != 200:
            return resp.status, resp.headers, content
        obj = orjson.loads(content)
        return obj if isinstance(obj, dict) else None

    return list(await asyncio.gather(*(read(object_id) for object_id in ids)))
