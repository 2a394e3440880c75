"""Embeddings: validation messages and deterministic unit vectors."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson
import pytest

from gateway.simulator.embeddings import check, embeddings_object, vector


def test_vectors_are_deterministic_unit_length_and_distinct() -> None:
    a = vector("hello", 1536)
    assert len(a) == 1536 and a == vector("hello", 1536)
    assert math.isclose(math.fsum(x * x for x in a), 1.0, rel_tol=1e-9)
    assert a != vector("hello!", 1536)
    assert vector([1, 2, 3], 8) == vector([1, 2, 3], 8)


def test_response_shape_and_usage() -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello world", "bye"]}
    assert check(body) is None
    response, tokens = embeddings_object(body)
    assert response["object"] == "list" and response["model"] == "text-embedding-3-small"
    assert [d["index"] for d in response["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 1536 for d in response["data"])
    assert response["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert tokens == 3


def test_dimensions_and_base64() -> None:
    body = {
        "model": "text-embedding-3-large",
        "input": "hi",
        "dimensions": 256,
        "encoding_format": "base64",
    }
    assert check(body) is None
    response, _ = embeddings_object(body)
    raw = base64.b64decode(response["data"][0]["embedding"])
    values = struct.unpack("<256f", raw)
    assert values == pytest.approx(vector("hi", 256), rel=1e-6)
    large, _ = embeddings_object({"model": "text-embedding-3-large", "input": "hi"})
    assert len(large["data"][0]["embedding"]) == 3072


def test_text_is_billed_in_cl100k_tokens_as_openai_bills_it() -> None:
    # o200k_base reads this as 10 tokens; the embedding models' cl100k_base as 31.
    _, tokens = embeddings_object(
        {"model": "text-embedding-3-small", "input": "नमस्ते दुनिया, यह एक परीक्षण है"}
    )
    assert tokens == 31


def test_token_array_input_bills_its_length() -> None:
    _, tokens = embeddings_object({"model": "text-embedding-ada-002", "input": [[1, 2, 3, 4], [5]]})
    assert tokens == 5


def error_of(body: dict[str, Any]) -> tuple[int, Any]:
    err = check(body)
    assert err is not None
    return err.status, orjson.loads(err.body())["error"]


def test_validation_errors() -> None:
    assert error_of({"input": "x"}) == (
        400,
        {
            "message": "you must provide a model parameter",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    status, err = error_of({"model": "text-embedding-4", "input": "x"})
    assert status == 404 and err["code"] == "model_not_found"
    assert (
        error_of({"model": "text-embedding-3-small"})[1]["message"]
        == "Missing required parameter: 'input'."
    )
    assert error_of({"model": "text-embedding-3-small", "input": ""})[1]["message"] == (
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
    )
    assert error_of({"model": "text-embedding-ada-002", "input": "x", "dimensions": 8})[1][
        "message"
    ] == ("This model does not support specifying dimensions.")
    assert error_of({"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"})[
        1
    ] == {
        "message": "Invalid value: 'hex'. Supported values are: 'float' and 'base64'.",
        "type": "invalid_request_error",
        "param": "encoding_format",
        "code": "invalid_value",
    }
    status, err = error_of({"model": "text-embedding-3-small", "input": "word " * 9000})
    assert status == 400 and "maximum context length is 8192 tokens" in err["message"]
