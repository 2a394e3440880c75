"""Request paths the gateway accepts: canonical, or refused. Pure.

The gateway checks a path (which endpoint it is, whether it is blocked) on its decoded form, and
an upstream, or a proxy in front of it, may normalise what it receives: `//`, `/./`, `/x/../`,
percent-encoded dots and slashes, a trailing slash. A path spelled any way but one could then
be checked as one thing and served as another. So only the one spelling is accepted: segments
of plain characters, nothing encoded, no empty, `.` or `..` segment. OpenAI's own paths and ids
(`file-…`, `ftjob-…`, `ft:gpt-4o-mini:org:suffix:id`) are all of that form.
"""

from __future__ import annotations

import re

_SEGMENTS = re.compile(rb"(?:/[A-Za-z0-9_.:~-]+)+")


def is_canonical(raw_path: bytes) -> bool:
    """Whether a request's path, as sent (`raw_path`, before any decoding), is the one spelling."""
    if _SEGMENTS.fullmatch(raw_path) is None:
        return False
    return not any(segment in (b".", b"..") for segment in raw_path.split(b"/"))
