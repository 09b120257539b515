"""The requests ``assetline submit`` publishes: read from a JSONL file, or built from fields.

Both give each request an id (and the id as its idempotency key) when none is set, so a
caller can follow its completions by id.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.errors import AssetlineError
from schemas.records import GenerationRequest


class RequestFileError(AssetlineError):
    """A line of a requests file that is not a valid request; the message names file:line."""

    code = "submit.bad_request_file"


def read_requests(path: Path) -> list[GenerationRequest]:
    """One request per non-blank line of ``path`` (JSON objects, ids added when missing)."""
    requests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data: dict[str, Any] = json.loads(line)
            data.setdefault("request_id", str(uuid.uuid4()))
            data.setdefault("idempotency_key", data["request_id"])
            requests.append(GenerationRequest.model_validate(data))
        except (json.JSONDecodeError, ValidationError, TypeError, AttributeError) as exc:
            detail = str(exc).splitlines()[0]
            raise RequestFileError(f"{path}:{number}: not a valid request: {detail}") from None
    return requests


def new_requests(count: int, **fields: Any) -> list[GenerationRequest]:
    """``count`` requests with ``fields``, each with a fresh id (its idempotency key too)."""
    requests = []
    for _ in range(count):
        request_id = str(uuid.uuid4())
        requests.append(
            GenerationRequest(request_id=request_id, idempotency_key=request_id, **fields)
        )
    return requests
