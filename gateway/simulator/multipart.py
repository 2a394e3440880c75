"""A small multipart/form-data reader for the upload endpoints (files, audio). Pure.

Our own rather than python-multipart: the gateway does not depend on it, and uploads here are
whole bodies already in memory, so splitting on the boundary is all the work there is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary a `multipart/form-data; boundary=...` header names, else None."""
    if not content_type:
        return None
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip().strip('"').encode("latin-1")
    return None


def parse(body: bytes, boundary: bytes) -> list[Part] | None:
    """The parts of a multipart body; None if it is not well formed."""
    # --B\r\n<head>\r\n\r\n<data>\r\n--B\r\n ... --B--: a boundary never occurs inside data
    # (the sender picks it so), so splitting on it yields the parts between a preamble and "--".
    segments = body.split(b"--" + boundary)
    if len(segments) < 2 or not segments[-1].startswith(b"--"):
        return None
    parts: list[Part] = []
    for segment in segments[1:-1]:
        if not segment.startswith(b"\r\n") or not segment.endswith(b"\r\n"):
            return None
        head, separator, data = segment[2:-2].partition(b"\r\n\r\n")
        if not separator:
            return None
        part = _part(head.decode("utf-8", "replace"), data)
        if part is None:
            return None
        parts.append(part)
    return parts


def _part(head: str, data: bytes) -> Part | None:
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    for line in head.split("\r\n"):
        header, _, value = line.partition(":")
        header = header.strip().lower()
        if header == "content-type":
            content_type = value.strip()
        elif header == "content-disposition":
            for param in value.split(";")[1:]:
                key, _, raw = param.strip().partition("=")
                text = raw.strip().strip('"')
                if key.lower() == "name":
                    name = text
                elif key.lower() == "filename":
                    filename = text
    if name is None:
        return None
    return Part(name, filename, content_type, data)


def form(parts: list[Part]) -> dict[str, Part]:
    """Parts by field name (a repeated field keeps its first value)."""
    fields: dict[str, Part] = {}
    for part in parts:
        fields.setdefault(part.name, part)
    return fields
