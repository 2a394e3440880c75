"""Which models the simulated upstream serves on a given day: release and shutdown dates. Pure.

The simulator's calendar is one date passed in (`simulator.today` or the `x-sim-today` knob),
never the clock. From its shutdown date a model answers 404 `model_not_found`, as OpenAI's do,
and leaves GET /v1/models; before its release it does not exist yet. Fine-tuned models
(`ft:<base>:...`) shut down with their base. Dates are OpenAI's deprecations page (see
openai-surface-facts.md, "Retirements"); a model missing here was never shut down.
"""

from __future__ import annotations

from datetime import date

from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError


def _each(day: date, *models: str) -> dict[str, date]:
    return dict.fromkeys(models, day)


SHUTDOWN: dict[str, date] = {
    **_each(date(2025, 7, 28), "o1-preview", "o1-preview-2024-09-12"),
    # Announced only as "October 2025"; the 27th is the one day sources name.
    **_each(date(2025, 10, 27), "o1-mini", "o1-mini-2024-09-12"),
    **_each(date(2026, 5, 12), "dall-e-2", "dall-e-3"),
    **_each(date(2026, 9, 28), "gpt-3.5-turbo-instruct", "babbage-002", "davinci-002"),
    **_each(date(2026, 10, 23), "o1", "o1-2024-12-17", "gpt-image-1"),
    **_each(
        date(2027, 1, 14),
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    ),
    # "whisper-1 and gpt-4o transcription models"; the page's details are unconfirmed.
    **_each(date(2027, 2, 26), "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"),
}

# Models released after the o1 era. Every other model the simulator knows is taken as released
# (its catalog keeps some later ones at every date so their endpoints can be exercised).
RELEASED: dict[str, date] = {
    "gpt-6-astra": date(2026, 9, 3),
    "gpt-6-luna": date(2026, 9, 22),
    "gpt-6.1-sol": date(2026, 9, 29),
    "gpt-6.2-astra": date(2026, 11, 17),
}

# GET /v1/models objects carry `shutdown_date` from August 2026 on.
SHUTDOWN_DATES_LISTED_FROM = date(2026, 8, 1)


def base_model(model: str) -> str:
    """The model whose dates apply: a fine-tuned model's base, else the model itself."""
    if model.startswith("ft:"):
        return model.split(":")[1]
    return model


def shutdown_date(model: str) -> date | None:
    return SHUTDOWN.get(base_model(model))


def serves(model: str, today: date) -> bool:
    """Whether `model` exists on `today`: released and not yet shut down."""
    name = base_model(model)
    released = RELEASED.get(name)
    if released is not None and today < released:
        return False
    shutdown = SHUTDOWN.get(name)
    return shutdown is None or today < shutdown


def refusal(model: object, today: date) -> SimError | None:
    """The 404 a request naming `model` gets on `today`, or None (also for a missing model:
    the endpoint's own checks word that)."""
    if isinstance(model, str) and model and not serves(model, today):
        return oe.model_not_found(model)
    return None
