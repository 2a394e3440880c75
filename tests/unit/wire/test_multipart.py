"""The model field of an upload, read without parsing the files."""

from __future__ import annotations

import httpx
import pytest

from gateway.wire.multipart import (
    MAX_PARTS,
    MalformedForm,
    field,
    field_values,
    read_form,
    with_field,
)


def form_field(body: bytes, content_type: str, name: str) -> str | None:
    """The field as the gateway takes it from a form it can read; None from one it cannot."""
    try:
        return field(read_form(body, content_type) or [], name)
    except MalformedForm:
        return None


def text_fields(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    return [(p.name, p.value) for p in read_form(body, content_type) or [] if not p.is_file]


def encoded(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=fields, files=files)
    return request.read(), request.headers["content-type"]


def test_a_field_is_found_beside_a_file() -> None:
    body, content_type = encoded(
        {"model": "whisper-1", "response_format": "json"}, {"file": ("a.mp3", b"\x00" * 5000)}
    )
    assert form_field(body, content_type, "model") == "whisper-1"
    assert form_field(body, content_type, "response_format") == "json"
    assert form_field(body, content_type, "language") is None


def test_a_file_named_like_the_field_is_not_the_field() -> None:
    body, content_type = encoded({}, {"model": ("model.txt", b"gpt-4o")})
    assert form_field(body, content_type, "model") is None


def test_not_multipart_is_none_and_a_form_naming_no_boundary_is_refused() -> None:
    assert read_form(b'{"model": "x"}', "application/json") is None
    with pytest.raises(MalformedForm):
        read_form(b"--x\r\n", "multipart/form-data")
    # Another multipart type is a form to some parsers: refused, never read as text.
    body, content_type = encoded({"model": "gpt-4o"}, {})
    for media in ("multipart/mixed", "Multipart/Related"):
        with pytest.raises(MalformedForm):
            read_form(body, media + content_type[len("multipart/form-data") :])


def test_a_field_given_twice_is_nobodys() -> None:
    body, content_type = encoded({"model": ["whisper-1", "gpt-4o-transcribe"]}, {})  # type: ignore[dict-item]
    assert form_field(body, content_type, "model") is None


def test_a_field_some_parsers_skip_is_read_and_a_form_of_another_shape_refused() -> None:
    def body(head: bytes) -> bytes:
        return b"--B\r\n" + head + b"\r\n\r\nfile-x\r\n--B--\r\n"

    form_type = "multipart/form-data; boundary=B"
    assert text_fields(body(b"Content-Disposition: form-data; name=note"), form_type) == [
        ("note", b"file-x")
    ]
    assert text_fields(
        body(b'Content-Disposition: form-data; name="note"; xfilename="a"'), form_type
    ) == [("note", b"file-x")]
    assert text_fields(
        body(b'Content-Disposition: form-data; name="note"'),
        "multipart/form-data; xboundary=A; boundary=B",
    ) == [("note", b"file-x")]
    for head, content_type in (
        (b'Content-Disposition: form-data; name="a"\nX: y', form_type),
        (b'Content-Disposition: form-data; name="a"; name="b"', form_type),
        (b'Content-Disposition: form-data; name="a\\"b"', form_type),
        (
            b'Content-Disposition: form-data; name="a"',
            "multipart/form-data; boundary=B; boundary=C",
        ),
    ):
        with pytest.raises(MalformedForm):
            text_fields(body(head), content_type)
    with pytest.raises(MalformedForm):
        text_fields(b"preamble\r\n" + body(b'Content-Disposition: form-data; name="a"'), form_type)


def values(body: bytes, content_type: str, name: str) -> list[bytes]:
    return field_values(read_form(body, content_type) or [], name)


def test_every_value_of_a_field_is_found_however_long_and_in_file_parts_too() -> None:
    long_prompt = "word " * 2_000  # longer than a text field the model is looked for in
    body, content_type = encoded({"prompt": long_prompt}, {"file": ("a.mp3", b"\x00" * 50)})
    assert values(body, content_type, "prompt") == [long_prompt.encode()]
    body, content_type = encoded({}, {"prompt": ("p.txt", b"Names: Ada.")})
    assert values(body, content_type, "prompt") == [b"Names: Ada."]
    assert values(b"{}", "application/json", "prompt") == []


def test_a_files_name_is_not_its_field_name() -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; filename="model"; name="file"\r\n\r\n'
        f"data\r\n--{boundary}--\r\n"
    ).encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    assert values(body, content_type, "model") == []
    assert values(body, content_type, "file") == [b"data"]


def test_a_field_also_given_as_a_file_part_is_nobodys() -> None:
    # Upstream may read the file part as the field (its parser keeps the first).
    request = httpx.Request(
        "POST", "http://x/",
        files=[("model", ("m.txt", b"gpt-4o-transcribe")), ("model", (None, "whisper-1"))],
    )  # fmt: skip
    assert form_field(request.read(), request.headers["content-type"], "model") is None


def test_the_boundary_is_the_boundary_parameter_not_text_that_spells_it() -> None:
    def form(boundary: bytes, model: bytes) -> bytes:
        return (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
            + model + b"\r\n--" + boundary + b"--\r\n"
        )  # fmt: skip

    decoy, served = form(b"AAA", b"whisper-1"), form(b"BBB", b"gpt-4o-transcribe")
    assert form_field(served, "multipart/form-data; xboundary=AAA; boundary=BBB", "model") == (
        "gpt-4o-transcribe"
    )
    assert form_field(decoy, 'multipart/form-data; boundary="AAA"', "model") == "whisper-1"
    assert form_field(decoy, "text/plain; boundary=AAA", "model") is None
    # One form hidden before or after another (a preamble, or text after the closing
    # delimiter) is a shape parsers read apart: refused, whichever boundary is named.
    for content_type in (
        "multipart/form-data; xboundary=AAA; boundary=BBB",
        'multipart/form-data; boundary="AAA"',
    ):
        with pytest.raises(MalformedForm):
            read_form(decoy + served, content_type)
        assert form_field(decoy + served, content_type, "model") is None


def test_a_part_given_two_dispositions_is_refused() -> None:
    # Parsers name such a part by the first or by the last: neither is taken.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="x"\r\n'
        b'Content-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n'
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--B--\r\n'
    )
    with pytest.raises(MalformedForm):
        read_form(body, "multipart/form-data; boundary=B")
    assert form_field(body, "multipart/form-data; boundary=B", "model") is None


def test_a_field_set_replaces_the_one_given_and_keeps_the_rest() -> None:
    audio = b"\r\n--not-the-boundary\r\n" + bytes(range(256)) * 20
    body, content_type = encoded(
        {"model": "whisper-1", "response_format": "text"}, {"file": ("a.mp3", audio)}
    )
    written = with_field(body, content_type, "response_format", "verbose_json")
    parts = read_form(written, content_type) or []
    assert [(p.name, p.is_file) for p in parts] == [
        ("model", False), ("file", True), ("response_format", False),
    ]  # fmt: skip
    assert parts[1].value == audio
    assert form_field(written, content_type, "response_format") == "verbose_json"


def test_a_field_set_is_added_when_the_form_has_none() -> None:
    body, content_type = encoded({"model": "whisper-1"}, {"file": ("a.mp3", b"\x01" * 99)})
    written = with_field(body, content_type, "response_format", "json")
    assert text_fields(written, content_type) == [
        ("model", b"whisper-1"), ("response_format", b"json"),
    ]  # fmt: skip


def aiohttp_name(disposition: str) -> tuple[str | None, str | None]:
    """(name, filename) of a part as aiohttp's server reads its Content-Disposition
    (`BodyPartReader.name` and `.filename`)."""
    from aiohttp.multipart import content_disposition_filename, parse_content_disposition

    _, params = parse_content_disposition(disposition)
    return content_disposition_filename(params, "name"), content_disposition_filename(
        params, "filename"
    )


def test_a_parameter_spelled_the_rfc_2231_way_is_refused() -> None:
    # `name*` (an extended parameter) and `name*0`, `name*1` (continuations) are the name to
    # aiohttp and Werkzeug (they take it over `name`), another parameter to a reader that does
    # not know them: a model field hidden from the gateway, or a file taken for a field.
    def body(disposition: bytes, value: bytes = b"gpt-4o-transcribe") -> bytes:
        return (
            b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            b"--B\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n"
            + value + b"\r\n--B--\r\n"
        )  # fmt: skip

    hidden = body(b"name=\"note\"; name*=UTF-8''model")
    assert aiohttp_name("form-data; name=\"note\"; name*=UTF-8''model") == ("model", None)
    assert aiohttp_name('form-data; name="prompt"; filename*0="a.txt"') == ("prompt", "a.txt")
    continued = body(b'name="note"; name*0="mo"; name*1="del"')
    as_file = body(b'name="prompt"; filename*0="a.txt"', b"long")
    for form in (hidden, continued, as_file):
        with pytest.raises(MalformedForm):
            read_form(form, "multipart/form-data; boundary=B")
    # The boundary too: Werkzeug splits the body at `boundary*`'s, a form inside the decoy's
    # file.
    decoy = body(b'name="file"; filename="a.mp3"')
    with pytest.raises(MalformedForm):
        read_form(decoy, "multipart/form-data; boundary=B; boundary*=UTF-8''C")
    # A file's name spelled so (non-ASCII names, as some libraries send them) is still a file.
    named = body(b'name="file"; filename="a.mp3"; filename*=UTF-8\'\'%C3%A9.mp3')
    assert [p.is_file for p in read_form(named, "multipart/form-data; boundary=B") or []] == [
        False,
        True,
    ]


def aiohttp_fields(body: bytes, content_type: str) -> list[tuple[str | None, object]]:
    """A form's fields as aiohttp's server reads them (`Request.post()`: a part's bytes
    decoded by its Content-Transfer-Encoding, a text field's by its charset)."""
    import asyncio

    from aiohttp.base_protocol import BaseProtocol
    from aiohttp.multipart import MultipartReader
    from aiohttp.streams import StreamReader

    async def read() -> list[tuple[str | None, object]]:
        loop = asyncio.get_running_loop()
        stream = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
        stream.feed_data(body)
        stream.feed_eof()
        reader = MultipartReader({"Content-Type": content_type}, stream)
        out: list[tuple[str | None, object]] = []
        while (part := await reader.next()) is not None:
            assert not isinstance(part, MultipartReader)
            raw = await part.read(decode=True)
            kind = part.headers.get("Content-Type")
            if part.filename is None and (kind is None or kind.startswith("text/")):
                out.append((part.name, bytes(raw).decode(part.get_charset("utf-8"))))
            else:
                out.append((part.name, bytes(raw)))
        return out

    return asyncio.run(read())


def starlette_fields(body: bytes, content_type: str) -> list[tuple[str, object]]:
    """A form's fields as Starlette (and so FastAPI) reads them: names and text in the form's
    charset."""
    import asyncio
    from collections.abc import AsyncIterator

    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async def read() -> list[tuple[str, object]]:
        parser = MultiPartParser(Headers({"content-type": content_type}), chunks())
        return list((await parser.parse()).multi_items())

    return asyncio.run(read())


def test_a_part_whose_bytes_a_parser_reads_decoded_is_refused() -> None:
    # aiohttp reads a part's bytes decoded by its Content-Transfer-Encoding and a text field in
    # its charset; Starlette reads every name and text field in the form's charset: an id, a
    # model, read by the gateway as other text.
    form_type = "multipart/form-data; boundary=B"

    def body(head: bytes, value: bytes, name: bytes = b"note") -> bytes:
        return (
            b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            b'--B\r\nContent-Disposition: form-data; name="' + name + b'"'
            + (b"\r\n" + head if head else b"") + b"\r\n\r\n" + value + b"\r\n--B--\r\n"
        )  # fmt: skip

    base64 = body(b"Content-Transfer-Encoding: base64", b"ZmlsZS1zZWNyZXQ=")
    assert aiohttp_fields(base64, form_type)[1] == ("note", "file-secret")
    quoted = body(b"Content-Transfer-Encoding: quoted-printable", b"file=2Dsecret")
    utf16 = body(b"Content-Type: text/plain; charset=utf-16-le", "file-secret".encode("utf-16-le"))
    assert aiohttp_fields(utf16, form_type)[1] == ("note", "file-secret")
    gzip = body(b"Content-Encoding: gzip", b"\x1f\x8b")
    twice = body(b"Content-Type: text/plain\r\nContent-Type: text/plain; charset=utf-16", b"x")
    for form in (base64, quoted, utf16, gzip, twice):
        with pytest.raises(MalformedForm):
            read_form(form, form_type)
    wide = "multipart/form-data; boundary=B; charset=utf-16-le"
    hidden = body(b"", "gpt-4o-transcribe".encode("utf-16-le"), "model".encode("utf-16-le"))
    assert dict(starlette_fields(hidden, wide))["model"] == "gpt-4o-transcribe"
    with pytest.raises(MalformedForm):
        read_form(hidden, wide)
    # What HTTP libraries send: identity encodings, UTF-8, and ASCII text in a charset that
    # reads ASCII as UTF-8 does (Apache HttpClient's text/plain; charset=ISO-8859-1).
    for head, content_type in (
        (b"Content-Transfer-Encoding: 8bit", form_type),
        (b"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: 8bit",
         form_type),
        (b"Content-Type: text/plain; charset=UTF-8", form_type),
        (b"", "multipart/form-data; boundary=B; charset=utf-8"),
        (b"", "multipart/form-data; boundary=B; charset=US-ASCII"),
    ):  # fmt: skip
        assert text_fields(body(head, b"file-secret"), content_type)[1] == ("note", b"file-secret")
    with pytest.raises(MalformedForm):
        read_form(body(b"Content-Type: text/plain; charset=ISO-8859-1", b"caf\xe9"), form_type)
    # A file's own charset is the file's: its bytes are not read as text by anyone.
    uploaded = body(b"Content-Type: text/plain; charset=utf-16", b"\xff\xfe", b'f"; filename="a')
    assert [p.is_file for p in read_form(uploaded, form_type) or []] == [False, True]


def test_a_part_with_headers_longer_than_libraries_send_is_refused_at_once() -> None:
    # Each parameter read copied the rest of the header: a 1 MB Content-Disposition of short
    # parameters took 13 s of the event loop (every team's requests waited), 10 MB minutes.
    many = b"".join(b"; p%d=1" % i for i in range(120_000))
    body = (
        b'--B\r\nContent-Disposition: form-data; name="model"' + many
        + b"\r\n\r\nwhisper-1\r\n--B--\r\n"
    )  # fmt: skip
    with pytest.raises(MalformedForm):
        read_form(body, "multipart/form-data; boundary=B")
    # Short, but more parameters than a Content-Disposition or a Content-Type has.
    for head, content_type in (
        (b'Content-Disposition: form-data; name="model"' + many[:200], "multipart/form-data; boundary=B"),
        (b'Content-Disposition: form-data; name="model"', "multipart/form-data; boundary=B" + many[:200].decode()),
    ):  # fmt: skip
        with pytest.raises(MalformedForm):
            read_form(b"--B\r\n" + head + b"\r\n\r\nx\r\n--B--\r\n", content_type)
    # What libraries send, a long file name too, is read.
    named = f'; filename="{"é" * 300}.mp3"'.encode()
    body = b'--B\r\nContent-Disposition: form-data; name="file"' + named + b"\r\n\r\nx\r\n--B--\r\n"
    assert [p.name for p in read_form(body, "multipart/form-data; boundary=B") or []] == ["file"]


def test_a_form_of_more_parts_than_libraries_send_is_refused_before_they_are_read() -> None:
    # Each part is read in Python: 10 MB of tiny parts (175,000) held the event loop 2.5 s.
    def form(count: int) -> bytes:
        part = b'--B\r\nContent-Disposition: form-data; name="n"\r\n\r\nx\r\n'
        return part * count + b"--B--\r\n"

    assert len(read_form(form(MAX_PARTS), "multipart/form-data; boundary=B") or []) == MAX_PARTS
    with pytest.raises(MalformedForm):
        read_form(form(MAX_PARTS + 1), "multipart/form-data; boundary=B")
