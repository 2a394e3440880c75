"""What the proxy benchmark sends: one request per scenario (chat completions or the Responses
API), in the form each server expects, and the path it is sent to. Pure data."""

from __future__ import annotations

import dataclasses
import json

SYSTEM = {"role": "system", "content": "Be brief."}
POEM = {"role": "user", "content": "Write a two-line poem about the sea."}
MATH = "What is 17*23?"

CHAT = "/chat/completions"  # request paths, after a server's ".../v1"
RESPONSES = "/responses"


def chat_body(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    gateway: str  # body sent to the gateway (full pipeline)
    direct: str  # what the gateway sends upstream, sent straight to the simulator
    litellm: str | None  # body for LiteLLM (None: not compared)
    stream: bool  # the gateway's answer is an SSE stream
    path: str = CHAT  # where each server takes it, after its ".../v1"


SCENARIOS = {
    s.name: s
    for s in (
        # model "auto": the router picks gpt-4o (gpt-4o-2024-08-06 upstream).
        Scenario(
            "non-stream",
            chat_body(model="auto", messages=[SYSTEM, POEM]),
            chat_body(model="gpt-4o-2024-08-06", messages=[SYSTEM, POEM]),
            chat_body(model="gpt-4o", messages=[SYSTEM, POEM]),
            stream=False,
        ),
        Scenario(
            "stream",
            chat_body(model="auto", messages=[SYSTEM, POEM], stream=True),
            chat_body(model="gpt-4o-2024-08-06", messages=[SYSTEM, POEM], stream=True),
            chat_body(model="gpt-4o", messages=[SYSTEM, POEM], stream=True),
            stream=True,
        ),
        # o1-mini takes neither system messages nor stream: the gateway merges the system
        # message into the user's and fakes the stream from one non-streamed upstream call,
        # which is what the direct baseline sends.
        Scenario(
            "o1-fake-stream",
            chat_body(
                model="o1-mini",
                messages=[SYSTEM, {"role": "user", "content": MATH}],
                stream=True,
            ),
            chat_body(
                model="o1-mini-2024-09-12",
                messages=[{"role": "user", "content": f"Be brief.\n\n{MATH}"}],
            ),
            None,
            stream=True,
        ),
        # The Responses API: the router picks gpt-4o for "auto", whose upstream serves it
        # natively, so the gateway forwards it with the snapshot's name (no translation).
        Scenario(
            "responses",
            chat_body(model="auto", instructions=SYSTEM["content"], input=POEM["content"]),
            chat_body(
                model="gpt-4o-2024-08-06", instructions=SYSTEM["content"], input=POEM["content"]
            ),
            None,
            stream=False,
            path=RESPONSES,
        ),
        Scenario(
            "responses-stream",
            chat_body(
                model="auto", instructions=SYSTEM["content"], input=POEM["content"], stream=True
            ),
            chat_body(
                model="gpt-4o-2024-08-06",
                instructions=SYSTEM["content"],
                input=POEM["content"],
                stream=True,
            ),
            None,
            stream=True,
            path=RESPONSES,
        ),
    )
}


def scenario_names(text: str) -> list[str]:
    """Comma-separated scenario names (a command-line option's value); ValueError unless each
    is one of SCENARIOS and there is at least one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise ValueError(f"expected some of {', '.join(SCENARIOS)}, got {text!r}")
    return names
