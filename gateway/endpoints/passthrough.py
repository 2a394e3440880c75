"""Paths outside the endpoint table that the operator lets through (`passthrough.allow`): each
forwarded once to the default upstream with the gateway's key, counted against the
team's request limits, and charged as its entry says (`usage`: the usage the answer reports,
at the price of the model that answered; `free`: nothing). An entry naming `teams` is open to
those teams only: to the others the path does not exist. Every model a body names (`model`,
any `..._model`, at any depth) must be a configured one the team may use or its own fine-tune,
on every entry: one the config does not have has no price and no limits.

What a call costs is unknown until it answers, so a `usage` call holds what its entry says one
may cost (`hold_usd`), and is charged that when it ends without saying what it cost after
upstream took it (a whole answer lost, cut off or not decodable), as any call is charged its
hold (a stream cut before its usage, a caller that left: upstream goes on with what it took;
an answer whose usage is null, as a run created queued: upstream runs it all the same); with
none, such a call is charged nothing.

Whatever such a path stores upstream is shared by every team, but the objects teams own are
not: any id of theirs it names (a path segment, a query value, a string anywhere in a JSON
body or in a form's text fields, recognised by how upstream's ids of each kind begin) must be
the caller's team's, or the path answers the 404 of a missing object before anything reaches
upstream. The gateway does not know every endpoint's fields, so it reads ids by their shape,
not by their name. A JSON body goes upstream as the gateway read it (`read_json_object`); a
form as it came (its files are not read); a body of other text (an SDP offer) as it came, every
id-shaped word in it checked. What parsers read differently is refused (400) rather than sent
unread: a urlencoded body, a query holding a `;` (a separator to some), a body that is
JSON to a lenient parser (upstream forgives a wrong Content-Type) but not to the gateway's, and
JSON held in a string or a form field that gives a key twice."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admission.plan import model_allowed
from gateway.admission.pricing import cost_micros
from gateway.config import AllowedPath, ModelConfig
from gateway.endpoints.attempt import Attempt
from gateway.endpoints.batches import BATCH
from gateway.endpoints.chat_stored import CHAT_COMPLETION
from gateway.endpoints.fine_tuning import FINE_TUNING_JOB
from gateway.endpoints.owned import FILE, VECTOR_STORE, Kind, check_owned
from gateway.endpoints.responses_stored import owned_response
from gateway.endpoints.tuned_models import MODEL, fine_tuned
from gateway.runtime.gateway import Gateway
from gateway.server.body import (
    declared_media,
    is_json,
    json_problem,
    lenient_only,
    read_body,
    read_form_body,
    repeated_key,
    written,
)
from gateway.server.caller import Caller, identify
from gateway.server.entry import exchange_of, gateway_of
from gateway.wire import errors
from gateway.wire.errors import GatewayError
from gateway.wire.multipart import Part, field
from gateway.wire.references import given_back_items, strings
from gateway.wire.usage import StreamMeter, answer_usage, whole_answer

Handler = Callable[[Request], Awaitable[Response]]
# The kinds of object a team owns, by how upstream's ids of each begin; responses apart (their
# owners are kept with the responses the gateway stores).
OWNED_KINDS: tuple[Kind, ...] = (FILE, VECTOR_STORE, BATCH, FINE_TUNING_JOB, CHAT_COMPLETION, MODEL)
RESPONSE_PREFIX = "resp_"
_ID_SHAPE = re.compile(
    "(?:"
    + "|".join(re.escape(k.prefix) for k in OWNED_KINDS)
    + "|"
    + RESPONSE_PREFIX
    + ")"
    + r"[A-Za-z0-9_.:-]+"
)
# In text, an id begins a word: `profile-x` or `left:0` hold no `file-` or `ft:` id.
_ID_IN_TEXT = re.compile("(?<![A-Za-z0-9])" + _ID_SHAPE.pattern)
_KIND_OF = {kind.prefix: kind for kind in OWNED_KINDS}
URLENCODED = "application/x-www-form-urlencoded"
_SPACE = "\ufeff \t\r\n"  # what JSON readers skip before a value (a byte order mark, some)


def allowed_passthrough(allowed: AllowedPath) -> Handler:
    async def handle(request: Request) -> Response:
        return await passthrough(request, allowed)

    return handle


async def passthrough(request: Request, allowed: AllowedPath) -> Response:
    gw = gateway_of(request)
    path = request.scope["path"][len("/v1") :]  # canonical: `Entry` refused every other spelling
    caller = await identify(gw, request)
    if allowed.teams and caller.team.name not in allowed.teams:
        raise errors.not_served(request.method, request.url.path)
    if b";" in request.scope["query_string"]:
        raise errors.ambiguous_query()  # the query goes upstream as it came
    body = await read_body(request, gw.config.server.max_body_bytes)
    if body and declared_media(request) == URLENCODED:
        raise errors.urlencoded_form()
    content_type = request.headers.get("content-type", "")
    parts = read_form_body(body, content_type) if body else None
    if parts is not None:
        # A form's text fields, a JSON one read as JSON; its files are not read.
        payload: Any = [_json_or_text(part.value) for part in parts if not part.is_file]
        named: Any = field(parts, "model")
        if named is None and any(part.name == "model" for part in parts):
            # Given twice, or as a file: which model upstream serves is its parser's choice.
            raise errors.missing_model()
        others = _form_models(parts)
    else:
        payload = _json_of(request, body)
        if payload is not None:
            body = written(payload)  # what upstream reads is what was checked
        named = payload.get("model") if isinstance(payload, dict) else None
        others = []
    text = _unread_text(body) if body and parts is None and payload is None else None
    decoded = _decoded(payload)
    await _check_named_ids(gw, caller, request, payload, decoded, text)
    named = named if isinstance(named, str) else None
    found = None if named is None else await _model_of(gw, caller, named)
    for other in [*others, *_models_named(decoded)]:
        if other != named:
            await _model_of(gw, caller, other)
    attempt = PassthroughAttempt(gw, request, exchange_of(request.scope), caller, path, None)
    try:
        if gw.config.admission.enabled:
            # Token use is unknown up front: count the request, charge the usage it reports.
            # Limits are those of no model; the usage is filed under the model the body names
            # (and then the one that answered).
            shape = gw.plan_shapes().get(
                caller.team, caller.key, "", endpoint=attempt.exchange.endpoint, counts_tokens=False
            )
            plan = shape.plan(gw.new_hold_id(), est_tokens=0, reserve=int(allowed.hold_usd))
            await attempt.admit(plan if found is None else plan.refiled(found[0]), None, 0)
            if allowed.charge == "free" and attempt.ticket is not None:
                attempt.ticket.settle(None)  # counted; nothing it reports is charged
        return await attempt.forward(body, stream=None)
    except GatewayError as exc:
        if exc.sent:
            # Whether it streams is told by its answer: one lost after upstream took it may be
            # a whole answer, which upstream finishes and bills. Its hold, never less.
            exc.billed = True
        attempt.failed(exc)
        raise


class PassthroughAttempt(Attempt):
    """A call on an allowed path. What upstream goes on with once the gateway stops reading
    (a run carries on whoever reads its events), or after an answer that says nothing of its
    cost (a run created queued, one stopped for tool outputs: upstream runs and bills it all
    the same), is nowhere told, and its events need not be text the meter can count: a call
    that ends without its usage is charged its entry's hold. So is one whose usage comes with
    a model the gateway has no price for (a snapshot newer than the config): upstream bills
    it, and the hold is the most the operator said a call may cost."""

    __slots__ = ()

    def upstream_query(self) -> bytes:
        """The query as it came, on every method: what an allowed path reads there is its own
        (a run's `include[]`), and the ids it names are checked."""
        return bytes(self.request.scope["query_string"])

    def failed(self, exc: GatewayError) -> None:
        if self.ticket is not None and exc.status == 499:
            self.ticket.settle_at_reserve()  # its caller left before the answer began
        super().failed(exc)

    def settle(self, status: int, content: bytes) -> None:
        ticket = self.ticket
        if ticket is not None and status < 400:
            if self.answered is None:
                self.answered = whole_answer(content)  # read once: `Attempt.settle` reads it too
            usage, model = answer_usage(self.answered)
            if usage is None or self.gw.model_of(model) is None:
                ticket.settle_at_reserve()
                return
        super().settle(status, content)

    def settle_stream(self, meter: StreamMeter, *, stopped: bool = False) -> None:
        ticket = self.ticket
        if ticket is not None and not ticket.done:
            found = self.gw.model_of(meter.model)
            # The text that went by, when it costs more than the hold: never less than that.
            if found is None or (
                meter.usage is None
                and cost_micros(found[1].price, self.left_usage(meter.generated_usage(0)))
                <= ticket.plan.reserve
            ):
                ticket.settle_at_reserve()
                return
        super().settle_stream(meter, stopped=stopped)


async def _model_of(gw: Gateway, caller: Caller, named: str) -> tuple[str, ModelConfig]:
    """The configured model (or the team's fine-tune) a body names, which the team must be
    allowed. A model the config does not have is refused on every entry, one charging nothing
    too: it has no price and no limits, and the gateway governs every model a team uses."""
    found = gw.models.get(named) or await fine_tuned(gw, caller, named)
    if found is None or not model_allowed(gw.config, caller.team, found[0]):
        raise errors.model_not_found(named)
    return found


def _models_named(values: list[Any]) -> list[str]:
    """Every model the JSON `values` name, at any depth: an eval run's `data_source.model`, its
    graders' `model`, a realtime session's `model`, any `..._model`. A model field that is no
    string (an object, a list) is one the gateway cannot tell: refused."""
    found: list[str] = []
    level: list[Any] = list(values)
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "model" or key.endswith("_model"):
                        if isinstance(value, str):
                            found.append(value)
                        elif value is not None:
                            raise errors.invalid_type(
                                key, "a string", _KIND.get(type(value), "a number")
                            )
                    below.append(value)
            elif isinstance(node, list):
                below += node
        level = below
    return found


_KIND = {dict: "an object", list: "an array", bool: "a boolean"}


def _form_models(parts: list[Part]) -> list[str]:
    """The models a form's `..._model` fields name (its `model` is read apart), every value of
    each: upstream may read any. One sent as a file is one the gateway cannot tell: refused."""
    found: list[str] = []
    for part in parts:
        if part.name.endswith("_model"):
            if part.is_file:
                raise errors.invalid_type(part.name, "a string", "a file")
            found.append(part.value.decode("utf-8", "replace"))
    return found


def _decoded(payload: Any) -> list[Any]:
    """The body's JSON and the JSON its strings hold, at any depth: a string whose content is
    JSON (an item's `"{\"file_id\": ...}"`) may be read as JSON by the endpoint, and the ids
    and models in it are named as surely as any. One that is JSON only to a lenient reader
    (`NaN`, `1e400`) is refused, as a form field is."""
    out: list[Any] = []
    level: list[Any] = [] if payload is None else [payload]
    while level:
        out += level
        below: list[Any] = []
        for value in strings(level):
            if value.lstrip(_SPACE)[:1] not in ("{", "["):
                continue
            try:
                inner = orjson.loads(value)
            except orjson.JSONDecodeError:
                if lenient_only(value):
                    raise errors.invalid_json(_NOT_STRICT) from None
                continue
            if isinstance(inner, dict | list):
                below.append(_read_alike(value, inner))
        level = below
    return out


def _read_alike(text: str | bytes, read: Any) -> Any:
    """JSON held in a string or a form field, which goes upstream as it came, `read` by the
    gateway: refused (400) when it gives a key twice, since the gateway reads the last value
    and the endpoint's parser may take the first (another team's id beside one of the
    caller's)."""
    if isinstance(read, dict | list):
        repeated = repeated_key(text)
        if repeated is not None:
            raise errors.invalid_json(
                f"a value in it holds JSON that parsers read apart: {repeated}"
            )
    return read


async def _check_named_ids(
    gw: Gateway,
    caller: Caller,
    request: Request,
    payload: Any,
    decoded: list[Any],
    text: str | None = None,
) -> None:
    """Every id of an object teams own that the request names, in its path, its query, its
    JSON body (the JSON its strings hold too, `decoded`) or anywhere in a body of other text,
    must be the caller's team's, and so must every item of a response its JSON body gives back
    by id (in `input` or `items`)."""
    query = (value for _, value in request.query_params.multi_items())
    named_ids = [
        named
        for value in (*request.scope["path"].split("/"), *query, *strings(decoded))
        for named in _ids_named(value)
    ]
    if text is not None:
        named_ids += _ids_in_text(text)
    seen: set[str] = set()  # each looked up once: a body may name one thousands of times
    for named in named_ids:
        if named in seen:
            continue
        seen.add(named)
        if named.startswith(RESPONSE_PREFIX):
            await owned_response(gw, caller, named)
        else:
            kind = next(k for prefix, k in _KIND_OF.items() if named.startswith(prefix))
            await check_owned(gw, caller, kind, named)
    # Items of a team's responses given back (a `/v1/responses/input_tokens` or a
    # conversation's input) are the team's, as on `/v1/responses`.
    items = given_back_items(payload) if isinstance(payload, dict) else []
    unknown = await gw.responses.unknown_items(caller.team.name, items) if items else []
    if unknown:
        raise errors.item_not_found(unknown[0])


def _ids_named(value: str) -> list[str]:
    """The ids a string names as an endpoint may read it: the whole string, or each item of a
    comma-separated list, with the whitespace around them trimmed (a reader that trims or
    splits would find an id where the string as a whole is none). Prose is not a list of ids:
    a string with any other piece names none."""
    if _ID_SHAPE.search(value) is None:
        return []  # most strings (a prompt's text): one scan, nothing split
    pieces = [piece.strip() for piece in value.split(",")]
    if all(_ID_SHAPE.fullmatch(piece) is not None for piece in pieces):
        return pieces
    return []


def _ids_in_text(text: str) -> list[str]:
    """Every id-shaped word of a text, wherever it stands (prose's full stop or colon after it
    is no part of it)."""
    return [found.group().rstrip(".:") for found in _ID_IN_TEXT.finditer(text)]


# Why a body or field is refused when it is JSON to a lenient parser but not to the gateway's.
_NOT_STRICT = (
    "it is JSON that this gateway's strict reader cannot read, whatever media type it says it "
    "is; send it as plain JSON (UTF-8, no NaN or Infinity)"
)


def _unread_text(body: bytes) -> str:
    """A body of another media type (an SDP offer, text), as text to search for ids: the
    gateway does not read it, upstream may. One that could be JSON to a parser less strict than
    the gateway's is refused (400): upstream forgives a wrong Content-Type, and Python's own
    reader takes a byte order mark, UTF-16, `NaN` or `1e400`, where an id spelled with escapes
    is found by no search of the text."""
    try:
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    if text.lstrip(_SPACE)[:1] in ("{", "["):
        raise errors.invalid_json(_NOT_STRICT)
    return text


def _json_or_text(value: bytes) -> Any:
    """A form's text field: JSON as the gateway reads it, else its text; one that is an object
    or array to Python's lenient reader (`NaN`, `1e400`, text after it), which upstream may
    parse the field with, is refused (400) rather than read as prose that names no id."""
    try:
        return _read_alike(value, orjson.loads(value))
    except orjson.JSONDecodeError:
        text = value.decode("utf-8", "replace")
    try:
        lenient, _ = json.JSONDecoder().raw_decode(text.lstrip(_SPACE))
    except ValueError:
        return text
    except RecursionError:
        lenient = []
    if isinstance(lenient, dict | list):
        raise errors.invalid_json(_NOT_STRICT)
    return text


def _json_of(request: Request, body: bytes) -> Any:
    """The body as JSON, or None: empty, or of another media type (a multipart upload names
    no model). A body that says it is JSON (or says nothing) and is not is refused: another
    parser might read ids in it that none was checked."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if is_json(declared_media(request)):
            raise errors.invalid_json(json_problem(body, exc)) from exc
        return None
