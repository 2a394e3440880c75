"""The model field of an upload, read without parsing the files."""

from __future__ import annotations

import httpx
import pytest

from gateway.wire.multipart import MalformedForm, form_field, text_fields


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


def test_not_multipart_is_none() -> None:
    assert form_field(b'{"model": "x"}', "application/json", "model") is None
    assert form_field(b"--x\r\n", "multipart/form-data", "model") is None


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
