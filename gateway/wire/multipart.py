"""Reading the text fields of a `multipart/form-data` body (the model an audio upload names, the
ids a pass-through form names), without parsing the files in it. Pure."""

from __future__ import annotations

# A text field is short; a part longer than this is a file, not what is asked for.
MAX_FIELD_BYTES = 4096


def form_field(body: bytes, content_type: str, name: str) -> str | None:
    """The value of the form field `name`, or None (not multipart, no such field, not text,
    or the field given twice, a file part of its name included: which one upstream reads is
    its parser's choice, so neither is taken for the one it will serve)."""
    named = [(is_file, value) for field, is_file, value in parts(body, content_type) or ()
             if field == name]  # fmt: skip
    if len(named) != 1 or named[0][0] or len(named[0][1]) > MAX_FIELD_BYTES:
        return None
    try:
        return named[0][1].decode()
    except UnicodeDecodeError:
        return None


def field_values(body: bytes, content_type: str, name: str) -> list[bytes]:
    """Every value a form gives the field `name`, however long, file parts of its name too:
    what upstream may read as that field."""
    return [value for field, _, value in parts(body, content_type) or () if field == name]


def text_fields(body: bytes, content_type: str) -> list[tuple[str, bytes]] | None:
    """Every field of a `multipart/form-data` body that is not a file (no `filename`), by
    name, in order (a name given twice, twice); None when the body is not such a form."""
    found = parts(body, content_type)
    return (
        None if found is None else [(name, value) for name, is_file, value in found if not is_file]
    )


def parts(body: bytes, content_type: str) -> list[tuple[str, bool, bytes]] | None:
    """Every named part of a `multipart/form-data` body, in order: its field name, whether it
    is a file (has a `filename`), its value; None when the body is not such a form."""
    boundary = _boundary(content_type)
    if boundary is None:
        return None
    delimiter = b"--" + boundary.encode("latin-1")
    out: list[tuple[str, bool, bytes]] = []
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter: what follows is no part upstream reads
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        params: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, _, given = line.partition(":")
            if header.strip().lower() == "content-disposition":
                # Each such header adds its parameters over the ones before: upstream names a
                # part given two by the last.
                params.update(_disposition_params(given))
        if "name" not in params:
            continue
        out.append((params["name"], "filename" in params, value.removesuffix(b"\r\n")))
    return out


def _boundary(content_type: str) -> str | None:
    """The boundary of a `multipart/form-data` content type: its `boundary` parameter, by its
    own key (an `xboundary=` or a value that spells `boundary=` is not it, though a search for
    the text would find it first, and upstream would split the body on another)."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip().strip('"')
    return None


def _disposition_params(disposition: str) -> dict[str, str]:
    """A Content-Disposition header value's parameters (`name`, `filename`), each by its own key (a
    `filename="x"` is no `name`; a key given twice, its last value)."""
    params: dict[str, str] = {}
    for param in disposition.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        params[key.strip().lower()] = raw.strip().strip('"')
    return params
