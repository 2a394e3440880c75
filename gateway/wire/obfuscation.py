"""The `obfuscation` field of the Responses API's streamed delta events: random letters and
digits bringing each delta to a multiple of 16 characters, so that an event's size, seen
through TLS, does not tell its text's. OpenAI pads by default; a request's
`stream_options.include_obfuscation: false` (or `include_obfuscation=false` in the query of a
stream picked up again) asks for none. The multiple of 16 is what upstream's recorded streams
show; OpenAI documents the field, not its length.

Every Responses stream a client gets pads the same way: upstream's own (and the simulator's),
one translated from a chat stream, and a cached answer replayed. A stream's padding is drawn
from one random key (`new_key`, from `secrets`, as the wire's ids are) by a keyed hash of each
event's sequence number, so each event's differs and the rest stays free of a random source.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Mapping
from typing import Any

PADDED = 16
_ALPHANUMERIC = string.ascii_letters + string.digits
_KEY_BYTES = 32


def asked(options: object) -> bool:
    """Whether a stream asked for with these `stream_options` is padded (unless told not to)."""
    return not (isinstance(options, Mapping) and options.get("include_obfuscation") is False)


def new_key() -> bytes:
    """A stream's own random key."""
    return secrets.token_bytes(_KEY_BYTES)


def key_for(options: object) -> bytes | None:
    """A new key for a stream asked for with these `stream_options`, or None: not padded."""
    return new_key() if asked(options) else None


def padding(key: bytes, n: int, delta: str) -> str:
    """The padding of event `n` of a stream, whose text is `delta`."""
    drawn = hashlib.blake2b(n.to_bytes(8, "little"), key=key, digest_size=PADDED).digest()
    return "".join(
        _ALPHANUMERIC[b % len(_ALPHANUMERIC)] for b in drawn[: PADDED - len(delta) % PADDED]
    )


def numbered(event: dict[str, Any], n: int, key: bytes | None) -> dict[str, Any]:
    """Event `n` as sent: its `sequence_number`, and its padding if it is a delta (and `key`
    is not None)."""
    delta = event.get("delta")
    if key is None or not isinstance(delta, str):
        return {**event, "sequence_number": n}
    return {**event, "sequence_number": n, "obfuscation": padding(key, n, delta)}
