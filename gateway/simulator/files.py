"""Uploaded files: the upload's checks and the `file` object. Pure.

A file is kept whole in memory with its object; `status` is "processed" at once (OpenAI
processes small files within seconds). Batch files expire 30 days after creation, others
never, as OpenAI defaults them; a batch's output and error files when its
`output_expires_after` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.simulator import multipart
from gateway.simulator import openai_errors as oe
from gateway.simulator.openai_errors import SimError

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
BATCH_FILE_TTL_S = 30 * 24 * 3600
# OpenAI takes 512 MB; the simulator holds files in memory, so it takes less.
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class StoredFile:
    object: dict[str, Any]
    data: bytes


def file_object(
    file_id: str, filename: str, purpose: str, size: int, created_at: int,
    expires_after_s: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    expires_at = created_at + BATCH_FILE_TTL_S if purpose == "batch" else None
    if expires_after_s is not None:
        expires_at = created_at + expires_after_s
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created_at,
        "expires_at": expires_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


def form_of(body: bytes, content_type: str) -> dict[str, multipart.Part] | SimError:
    """The fields of a multipart upload, or the 400 for a body that is not one."""
    boundary = multipart.boundary_of(content_type)
    if boundary is None:
        return oe.expected_multipart(content_type)
    parts = multipart.parse(body, boundary)
    if parts is None:
        return SimError(400, "Could not parse multipart form")
    return multipart.form(parts)


def check_upload(fields: dict[str, multipart.Part]) -> tuple[str, str, bytes] | SimError:
    """(filename, purpose, data) of a valid `POST /v1/files`."""
    upload = fields.get("file")
    if upload is None or upload.filename is None:
        return oe.missing_parameter("file")
    purpose_part = fields.get("purpose")
    if purpose_part is None:
        return oe.missing_parameter("purpose")
    purpose = purpose_part.data.decode("utf-8", "replace")
    if purpose not in PURPOSES:
        return oe.invalid_value("purpose", purpose, PURPOSES)
    if len(upload.data) > MAX_FILE_BYTES:
        return oe.invalid_file("file", f"file too large (at most {MAX_FILE_BYTES} bytes here).")
    return upload.filename, purpose, upload.data
