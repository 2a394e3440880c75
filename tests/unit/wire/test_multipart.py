"""The model field of an upload, read without parsing the files."""

from __future__ import annotations

import httpx

from gateway.wire.multipart import field_values, form_field


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


def test_every_value_of_a_field_is_found_however_long_and_in_file_parts_too() -> None:
    long_prompt = "word " * 2_000  # longer than a text field the model is looked for in
    body, content_type = encoded({"prompt": long_prompt}, {"file": ("a.mp3", b"\x00" * 50)})
    assert field_values(body, content_type, "prompt") == [long_prompt.encode()]
    body, content_type = encoded({}, {"prompt": ("p.txt", b"Names: Ada.")})
    assert field_values(body, content_type, "prompt") == [b"Names: Ada."]
    assert field_values(b"{}", "application/json", "prompt") == []


def test_a_files_name_is_not_its_field_name() -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; filename="model"; name="file"\r\n\r\n'
        f"data\r\n--{boundary}--\r\n"
    ).encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    assert field_values(body, content_type, "model") == []
    assert field_values(body, content_type, "file") == [b"data"]


def test_a_field_also_given_as_a_file_part_is_nobodys() -> None:
    # Upstream may read the file part as the field (its parser keeps the first).
    request = httpx.Request(
        "POST", "http://x/",
        files=[("model", ("m.txt", b"gpt-4o-transcribe")), ("model", (None, "whisper-1"))],
    )  # fmt: skip
    assert form_field(request.read(), request.headers["content-type"], "model") is None


def test_the_boundary_is_the_boundary_parameter_not_text_that_spells_it() -> None:
    body = (
        b'--AAA\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--AAA--\r\n'
        b'--BBB\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n'
        b"--BBB--\r\n"
    )
    assert form_field(body, "multipart/form-data; xboundary=AAA; boundary=BBB", "model") == (
        "gpt-4o-transcribe"
    )
    assert form_field(body, 'multipart/form-data; boundary="AAA"', "model") == "whisper-1"
    assert form_field(body, "text/plain; boundary=AAA", "model") is None


def test_a_part_given_two_dispositions_is_named_by_the_last() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="x"\r\n'
        b'Content-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n'
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--B--\r\n'
    )
    assert form_field(body, "multipart/form-data; boundary=B", "model") is None  # given twice
