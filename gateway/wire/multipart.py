"""Reading the text fields of a `multipart/form-data` body (the model an audio upload names, the
ids a pass-through form names), without parsing the files in it. Pure.

A form goes upstream as it came, so what the gateway reads in it must be what upstream's parser
reads. Parsers differ on what RFC 7578 leaves loose (a boundary met inside a header, unquoted
parameters, a `filename` hidden in another parameter's name, headers split by a bare LF), so a
form is read in one strict shape only and refused (`MalformedForm`) in any other: a field the
gateway could miss must never reach upstream unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A text field is short; a part longer than this is a file, not what is asked for.
MAX_FIELD_BYTES = 4096
# A part's headers and a header's parameters, at most: libraries send a Content-Disposition of
# three parameters (a long file name fits), aiohttp refuses a header line over 8,190 bytes. Read
# without a bound, a header of many short parameters held the event loop, every team's
# requests waiting, for time growing with its length squared.
MAX_HEAD_BYTES = 16384
MAX_PARAMS = 16
# Parts of a form, at most (Starlette's default too): each is read in Python, and 10 MB of
# tiny ones held the event loop for seconds. OpenAI's forms have a few dozen at the most.
MAX_PARTS = 1000
MEDIA_TYPE = "multipart/form-data"
# RFC 2046's boundary characters: 1 to 70 of them, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED = re.compile(r'"([^"\\\r\n]*)"')
# A part's bytes are read as they are. aiohttp decodes a part by its Content-Transfer-Encoding
# (base64, quoted-printable) and reads a text field in its charset; Starlette reads every name
# and text field in the form's charset: another encoding would be one text here, another there.
_IDENTITY_TRANSFER = frozenset({"7bit", "8bit", "binary"})
_UTF8 = frozenset({"utf-8", "utf8"})
# Charsets that read ASCII as UTF-8 does (Apache HttpClient declares ISO-8859-1): ASCII text only.
_ASCII_ALIKE = frozenset({"us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"})
# Headers that change how a part is read: each at most once, as Content-Disposition is.
_READ_BY = ("content-disposition", "content-type", "content-transfer-encoding", "content-encoding")


class MalformedForm(ValueError):
    """A `multipart/form-data` body (or its Content-Type) not in the one shape read here."""


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    is_file: bool  # it has a `filename` (or `filename*`): its bytes are not read
    value: bytes


def field(parts: list[Part], name: str) -> str | None:
    """The value of the field `name` in a form read already, or None (no such field, not text,
    or the field given twice, as text or as a file: which one upstream reads is its parser's
    choice, so neither is taken for the one it will serve)."""
    named = [part for part in parts if part.name == name]
    if len(named) != 1 or named[0].is_file or len(named[0].value) > MAX_FIELD_BYTES:
        return None
    try:
        return named[0].value.decode()
    except UnicodeDecodeError:
        return None


def field_values(parts: list[Part], name: str) -> list[bytes]:
    """Every value a form read already gives the field `name`, however long, file parts of its
    name too: any of them may be what upstream reads (and bills) as that field."""
    return [part.value for part in parts if part.name == name]


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == MEDIA_TYPE


def read_form(body: bytes, content_type: str) -> list[Part] | None:
    """The parts of a `multipart/form-data` body; None when its media type is no multipart
    one (another multipart type is refused). Raises
    `MalformedForm` for anything but the strict shape (a form naming no boundary too, which
    upstream's parser might guess): the body
    begins with the first delimiter (no preamble), every delimiter is `CRLF--boundary` followed
    by CRLF (the last by `--`, then at most a CRLF), every header line is `Name: value` ended
    by CRLF, and each part has one `form-data` Content-Disposition whose parameters are each
    given once, as a token or a plain quoted string, none in RFC 2231's spelling but a
    file's `filename*`; a part's bytes are read as they are (no Content-Transfer-Encoding but
    an identity, no Content-Encoding), and its name and text in UTF-8 (or, declared in a charset
    that reads ASCII alike, ASCII only)."""
    if not is_form(content_type):
        media = content_type.split(";", 1)[0].strip().lower()
        if media.startswith("multipart/"):
            # Read as a form by parsers that take any multipart body (aiohttp's `multipart()`),
            # as text here: its fields would reach upstream unread.
            raise MalformedForm(f"a multipart body must be {MEDIA_TYPE}, not {media}")
        return None
    params = _params(content_type.split(";", 1)[1] if ";" in content_type else "")
    boundary = _boundary(params)
    if boundary is None:
        raise MalformedForm("its Content-Type names no boundary")
    charset = _charset(params)
    dash = b"--" + boundary
    if not body.startswith(dash):
        raise MalformedForm("the body must begin with its boundary")
    segments = body[len(dash) :].split(b"\r\n" + dash, MAX_PARTS + 1)
    if len(segments) > MAX_PARTS + 1:
        raise MalformedForm(f"it has more than {MAX_PARTS} parts")
    last = segments.pop()
    if last not in (b"--", b"--\r\n"):
        raise MalformedForm("the body must end with its closing boundary")
    parts: list[Part] = []
    for segment in segments:
        if not segment.startswith(b"\r\n"):
            raise MalformedForm("a boundary must be followed by a line break")
        parts.append(_part(segment[2:], charset))
    return parts


def with_field(body: bytes, content_type: str, name: str, value: str) -> bytes:
    """A form read already (`read_form`: in its one strict shape) with the text field `name`
    set to `value`: its parts of that name left out, one part of it added last."""
    params = _params(content_type.split(";", 1)[1] if ";" in content_type else "")
    boundary, charset = _boundary(params), _charset(params)
    assert boundary is not None  # read by `read_form` already
    dash = b"--" + boundary
    segments = body[len(dash) :].split(b"\r\n" + dash)
    last = segments.pop()
    kept = [segment for segment in segments if _part(segment[2:], charset).name != name]
    added = f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()
    return dash + (b"\r\n" + dash).join([*kept, added, last])


def _boundary(params: dict[str, str]) -> bytes | None:
    boundary = params.get("boundary")
    if boundary is None:
        return None
    if _BOUNDARY.fullmatch(boundary) is None:
        raise MalformedForm("the boundary has characters a boundary may not have")
    return boundary.encode("ascii")


def _part(segment: bytes, form_charset: str) -> Part:
    head, sep, value = segment.partition(b"\r\n\r\n")
    if not sep:
        raise MalformedForm("a part has no blank line after its headers")
    if len(head) > MAX_HEAD_BYTES:
        raise MalformedForm(f"a part's headers are longer than {MAX_HEAD_BYTES} bytes")
    headers: dict[str, str] = {}
    for raw in head.split(b"\r\n"):
        if b"\r" in raw or b"\n" in raw:
            raise MalformedForm("a header line must end with CRLF")
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            raise MalformedForm("a part's headers are not UTF-8") from None
        header, colon, header_value = line.partition(":")
        if not colon or _TOKEN.fullmatch(header) is None:
            raise MalformedForm("a part has a header line that is no header")
        header = header.lower()
        if header in _READ_BY:
            if header in headers:
                raise MalformedForm(f"a part has two {header} headers")
            headers[header] = header_value
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise MalformedForm("a part has no Content-Disposition")
    transfer = headers.get("content-transfer-encoding", "binary").strip().lower()
    if transfer not in _IDENTITY_TRANSFER or "content-encoding" in headers:
        raise MalformedForm("a part's bytes are encoded, which parsers read apart")
    kind, _, rest = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise MalformedForm("a part's Content-Disposition is not form-data")
    params = _params(rest)
    name = params.get("name")
    if name is None:
        raise MalformedForm("a part has no name")
    is_file = "filename" in params or "filename*" in params
    read: list[tuple[str | bytes, str]] = [(name, form_charset)]
    if not is_file:  # a file's bytes (and its own charset) are nobody's text
        own = headers.get("content-type", "")
        charset = _charset(_params(own.split(";", 1)[1] if ";" in own else ""))
        read += [(value, form_charset), (value, charset)]
    for text, declared in read:
        if declared not in _UTF8 and (declared not in _ASCII_ALIKE or not text.isascii()):
            raise MalformedForm(f"a part's text is declared in {declared}, which is read apart")
    return Part(name, is_file, value)


def _charset(params: dict[str, str]) -> str:
    """The charset a Content-Type's parameters name (lower-cased), UTF-8 when none."""
    return params.get("charset", "utf-8").lower()


def _params(text: str) -> dict[str, str]:
    """`; key=value` parameters, each key once (lower-cased), each value a token or a quoted
    string without escapes."""
    params: dict[str, str] = {}
    rest = text.strip()
    while rest:
        key, eq, rest = rest.partition("=")
        key = key.strip().lower()
        if not eq or _TOKEN.fullmatch(key) is None:
            raise MalformedForm("a header parameter is not key=value")
        rest = rest.lstrip()
        quoted = _QUOTED.match(rest)
        if quoted is not None:
            value, rest = str(quoted.group(1)), rest[quoted.end() :]
        else:
            value, sep, after = rest.partition(";")
            value, rest = value.strip(), sep + after
            if _TOKEN.fullmatch(value) is None:
                raise MalformedForm("a header parameter's value is neither a token nor quoted")
        if "*" in key and key != "filename*":
            # RFC 2231's `name*` and continuations (`name*0`, `name*1`): aiohttp and Werkzeug
            # read them as `name` (over a plain `name`), others as a parameter of their own,
            # so a field, a boundary or a file would be one thing here and another upstream.
            # Only a file's name is sent so (non-ASCII names), and either way it is a file.
            raise MalformedForm(f"the parameter {key!r} is spelled as parsers read apart")
        if key in params:
            raise MalformedForm(f"the parameter {key!r} is given twice")
        if len(params) == MAX_PARAMS:
            raise MalformedForm(f"a header has more than {MAX_PARAMS} parameters")
        params[key] = value
        rest = rest.strip()
        if rest:
            if not rest.startswith(";"):
                raise MalformedForm("header parameters must be separated by ';'")
            rest = rest[1:].strip()
    return params
