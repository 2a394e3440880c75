"""A batch line answered by the simulator's own code for its endpoint, charged at batch price.

The answer is the one a direct call would get (same checks, same text and usage); only the
bill differs: half price, rounded up per line (bill.py), and added when the batch completes.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from gateway.simulator import bill, embeddings, moderations
from gateway.simulator.answers import Answer, completion_object
from gateway.simulator.ids import completion_id, moderation_id
from gateway.simulator.knobs import NO_KNOBS, Knobs
from gateway.simulator.media_api import MediaApi
from gateway.simulator.openai_errors import SimError
from gateway.simulator.responses_api import ResponsesApi


class Answerer(Protocol):
    """The parts of the simulator a batch line needs (`app.Simulator`)."""

    media: MediaApi
    responses: ResponsesApi

    def chat_answer(
        self, body: dict[str, Any], key: str, knobs: Knobs
    ) -> tuple[Answer | SimError, int]: ...

    def draw_seed(self) -> int: ...


def chat_charge(answer: Answer, *, batch: bool = False) -> bill.Charge:
    return bill.tokens_charge(
        "/v1/chat/completions",
        answer.model,
        answer.prompt_tokens,
        answer.completion_tokens,
        cached_tokens=answer.cached_tokens,
        reasoning_tokens=answer.reasoning_tokens,
        cache_write_tokens=answer.cache_write_tokens or 0,
        batch=batch,
        tier=None if batch else answer.service_tier,
    )


def answer_line(
    sim: Answerer, endpoint: str, body: dict[str, Any], key: str
) -> tuple[int, dict[str, Any], bill.Charge | None]:
    """A batch line, answered by the endpoint's own code and charged at batch price."""
    result: dict[str, Any] | SimError
    charge: bill.Charge | None = None
    if endpoint == "/v1/chat/completions":
        answer, _ = sim.chat_answer(body, key, NO_KNOBS)
        if isinstance(answer, SimError):
            return answer.status, answer.payload(), None
        chat_id = completion_id(sim.draw_seed())
        result = completion_object(answer, completion_id=chat_id, created=int(time.time()))
        charge = chat_charge(answer, batch=True)
    elif endpoint == "/v1/embeddings":
        error = embeddings.check(body)
        result = error if error is not None else embeddings.embeddings_object(body)[0]
    elif endpoint == "/v1/completions":
        completed = sim.media.completion(body, batch=True)
        result = completed if isinstance(completed, SimError) else completed[0]
    elif endpoint == "/v1/responses":
        stored, _ = sim.responses.build(body, key, None)
        result = stored if isinstance(stored, SimError) else stored.response
    else:  # /v1/moderations: free
        error = moderations.check(body)
        moderation = moderation_id(sim.draw_seed())
        result = error if error else moderations.moderation_object(body, moderation)
    if isinstance(result, SimError):
        return result.status, result.payload(), None
    if charge is None and endpoint != "/v1/moderations":
        charge = bill.usage_charge(endpoint, result["model"], result["usage"], batch=True)
    return 200, result, charge
