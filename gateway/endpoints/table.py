"""The endpoint table: every OpenAI endpoint the gateway serves, declared once, with where its
model is named, how it is charged and whose objects it touches. The routes are made from it;
a `/v1/` path not in it is refused, unless the operator lets it through in config
(`passthrough.allow`, with how it is charged).

Read the table as the feature matrix: what is served, governed how.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config import AllowedPath
from gateway.endpoints import (
    batches,
    chat_stored,
    files,
    fine_tuning,
    models,
    responses_stored,
    tuned_models,
    vector_stores,
)
from gateway.endpoints.chat import chat_completions
from gateway.endpoints.governed import Cost, Governed, governed
from gateway.endpoints.passthrough import allowed_passthrough
from gateway.endpoints.responses import create_response
from gateway.endpoints.route import route_endpoint
from gateway.wire import errors, validation

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    model: str  # where the request names its model
    charge: str  # what is held before the call and charged after
    owner: str  # whose objects it reads or makes


TABLE: tuple[Endpoint, ...] = (
    Endpoint(
        "POST", "/v1/chat/completions", chat_completions, "body (or a routing alias)",
        "worst case: prompt and completion cap; settled to usage",
        "with store: true, the stored completion is the team's",
    ),
    Endpoint(
        "GET", "/v1/chat/completions", chat_stored.list_completions, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/chat/completions/{completion_id}", chat_stored.retrieve, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/chat/completions/{completion_id}", chat_stored.update, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "DELETE", "/v1/chat/completions/{completion_id}", chat_stored.delete, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/chat/completions/{completion_id}/messages", chat_stored.messages, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/responses", create_response, "body (or a routing alias)",
        "worst case: input, instructions, tools and output cap; settled to usage",
        "the response is the team's",
    ),
    Endpoint(
        "GET", "/v1/responses/{response_id}", responses_stored.retrieve, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "DELETE", "/v1/responses/{response_id}", responses_stored.delete, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/responses/{response_id}/cancel", responses_stored.cancel, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/responses/{response_id}/input_items", responses_stored.input_items, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/embeddings",
        governed(Governed(Cost.EMBEDDINGS, check=validation.check_embeddings)), "body",
        "input tokens at the input price; settled to usage", "-",
    ),
    Endpoint(
        "POST", "/v1/completions",
        governed(Governed(Cost.COMPLETIONS, check=validation.check_completions)), "body",
        "prompt, and max_tokens for each of best_of (at least n); settled to usage", "-",
    ),
    Endpoint(
        "POST", "/v1/moderations",
        governed(Governed(
            Cost.FREE, default_model="omni-moderation-latest", check=validation.check_moderations
        )),
        "body (default omni-moderation-latest)", "free: counted against request limits", "-",
    ),
    Endpoint(
        "POST", "/v1/images/generations",
        governed(Governed(Cost.IMAGES, check=validation.check_images)), "body",
        "n images at the model's price for quality and size (DALL-E), or the prompt and the "
        "images' output tokens (GPT image models); settled to the images made or to usage", "-",
    ),
    Endpoint(
        "POST", "/v1/audio/speech",
        governed(Governed(Cost.SPEECH, check=validation.check_speech)), "body",
        "characters of input at the character price (tts-1), or the input's text tokens and "
        "audio_tokens_per_character audio tokens a character (gpt-4o-mini-tts); settled to the "
        "usage of `speech.audio.done` (raw audio asked upstream as `stream_format: sse`)", "-",
    ),
    Endpoint(
        "POST", "/v1/audio/transcriptions",
        governed(Governed(Cost.TRANSCRIPTION, form=True)), "form field",
        "the longest the upload can play at the minute price (whisper-1), or the prompt, its "
        "audio tokens and the transcript cap (gpt-4o models); settled to the seconds or the "
        "token usage reported (streamed: its done event; text asked upstream as json, "
        "subtitles as verbose_json)", "-",
    ),
    Endpoint(
        "POST", "/v1/audio/translations",
        governed(Governed(Cost.TRANSCRIPTION, form=True)), "form field",
        "the longest the upload can play at the minute price; settled to the seconds reported "
        "(json, text and subtitles asked upstream as verbose_json)", "-",
    ),
    Endpoint(
        "POST", "/v1/files", files.upload, "-", "free: counted against request limits",
        "the file is the team's",
    ),
    Endpoint(
        "GET", "/v1/files", files.list_files, "-", "free: counted against request limits",
        "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/files/{file_id}", files.retrieve, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/files/{file_id}/content", files.content, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "DELETE", "/v1/files/{file_id}", files.delete, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/vector_stores", vector_stores.create, "-",
        "free: counted against request limits",
        "the store is the team's; its file_ids must be the team's",
    ),
    Endpoint(
        "GET", "/v1/vector_stores", vector_stores.list_stores, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/vector_stores/{vector_store_id}", vector_stores.retrieve, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/vector_stores/{vector_store_id}", vector_stores.update, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "DELETE", "/v1/vector_stores/{vector_store_id}", vector_stores.delete, "-",
        "free: counted against request limits", "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/batches", batches.create, "each line of the input file",
        "every line's worst case at half price, held while the batch may run; settled from "
        "its output file when it ends", "the batch and its input/output files: the team's",
    ),
    Endpoint("GET", "/v1/batches", batches.list_batches, "-", "counted", "the team's own"),
    Endpoint(
        "GET", "/v1/batches/{batch_id}", batches.retrieve, "-", "counted", "the team's own only"
    ),
    Endpoint(
        "POST", "/v1/batches/{batch_id}/cancel", batches.cancel, "-", "counted",
        "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/fine_tuning/jobs", fine_tuning.create, "body (the base model)",
        "the training file's tokens x epochs (n_epochs, or fine_tuning.auto_epochs for auto) at "
        "the base's training price, held while the job may run; settled from trained_tokens "
        "when it ends",
        "the job, its fine-tuned model and result files: the team's; its training and "
        "validation files must be the team's",
    ),
    Endpoint(
        "GET", "/v1/fine_tuning/jobs", fine_tuning.list_jobs, "-", "counted", "the team's own"
    ),
    Endpoint(
        "GET", "/v1/fine_tuning/jobs/{job_id}", fine_tuning.retrieve, "-", "counted",
        "the team's own only",
    ),
    Endpoint(
        "POST", "/v1/fine_tuning/jobs/{job_id}/cancel", fine_tuning.cancel, "-", "counted",
        "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/fine_tuning/jobs/{job_id}/events", fine_tuning.events, "-", "counted",
        "the team's own only",
    ),
    Endpoint(
        "GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints", fine_tuning.checkpoints, "-",
        "counted", "the team's own only; each checkpoint's model becomes the team's",
    ),
    Endpoint(
        "GET", "/v1/models", models.list_models, "-",
        "never charged nor counted (answered without upstream)",
        "the configured models the team may use, and its own fine-tunes",
    ),
    Endpoint(
        "GET", "/v1/models/{model:path}", models.get_model, "path",
        "never charged; counted against request limits when a fine-tune is read upstream",
        "a fine-tune: the team's own only",
    ),
    Endpoint(
        "DELETE", "/v1/models/{model:path}", tuned_models.delete, "path",
        "free: counted against request limits", "the team's own fine-tunes only",
    ),
    Endpoint(
        "POST", "/v1/route", route_endpoint, "body",
        "never charged nor counted (no upstream call)", "-",
    ),
)  # fmt: skip


def routes(allowed: Sequence[AllowedPath]) -> list[Route]:
    """The table's routes, then the operator's allowed paths, then a refusal for the rest of
    `/v1/` (nothing reaches upstream ungoverned)."""
    out = [Route(e.path, e.handler, methods=[e.method]) for e in TABLE]
    # The upstream account's own administration: never, whatever config says.
    out += [Route(p + "{rest:path}", account_path, methods=list(METHODS)) for p in ACCOUNT_PATHS]
    out += [Route(a.path, allowed_passthrough(a), methods=[a.method]) for a in allowed]
    out.append(Route("/v1/realtime/{rest:path}", realtime, methods=list(METHODS)))
    out.append(Route("/v1/{rest:path}", not_served, methods=list(METHODS)))
    return out


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Usage and costs of every project, users, admin keys: a team key must never reach them with
# the gateway's upstream key.
ACCOUNT_PATHS = ("/v1/organization", "/v1/dashboard")


async def account_path(request: Request) -> Response:
    raise errors.account_path_forbidden()


async def realtime(request: Request) -> Response:
    """Sessions and client secrets hand the caller an upstream credential whose use never
    passes the gateway again: its cost cannot be seen, so only an operator may open them to a
    team (`passthrough.allow` with `teams`)."""
    raise errors.realtime_not_governed()


async def not_served(request: Request) -> Response:
    raise errors.not_served(request.method, request.url.path)
