"""When the simulated model calls a tool of its own accord: the prompt names one, or asks for one.

Pure. Shared by native tools (chat, Responses) and the prompted tool protocol (`emulated`), so
the same prompt calls the same tool whichever way the tools were offered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# "call the weather tool", "use a function": a request for some tool, named or not.
_ASKS_FOR_TOOL = re.compile(r"\b(call|use|invoke|run)\b[^.?!]*\b(tools?|functions?)\b", re.I)


def asks_for_tool(text: str) -> bool:
    return _ASKS_FOR_TOOL.search(text) is not None


def mentioned(names: Iterable[str], text: str) -> str | None:
    """The first of `names` the text mentions (case-insensitive)."""
    lowered = text.lower()
    return next((name for name in names if name.lower() in lowered), None)
