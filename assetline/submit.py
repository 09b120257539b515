"""The requests ``assetline submit`` publishes: read from a JSONL file, or built from fields.

Both give each request an id (and the id as its idempotency key) when none is set, so a
caller can follow its completions by id. :func:`parse_priority` and :func:`parse_deadline`
read the ``--priority`` and ``--deadline`` options of ``submit`` and ``campaign``; a Python
producer sets the fields directly::

    GenerationRequest(..., priority=Priority.HIGH, latency_budget_ms=parse_deadline("30m"))
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from schemas.avro_schema import INT32_MAX
from schemas.errors import AssetlineError
from schemas.records import GenerationRequest, Priority

#: ``1h30m``, ``90s``, ``500ms``: whole numbers, units largest first, each at most once.
_DEADLINE = re.compile(
    r"(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m(?!s))?(?:(?P<s>[0-9]+)s)?(?:(?P<ms>[0-9]+)ms)?"
)
_UNIT_MS: Final = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
#: The longest a deadline may be: ``latency_budget_ms`` is an Avro int (about 24.8 days).
MAX_DEADLINE_MS: Final = INT32_MAX


class RequestOptionError(AssetlineError, ValueError):
    """A ``--priority`` or ``--deadline`` value that is not one; the message is one line."""

    code = "submit.bad_option"


def parse_priority(text: str) -> Priority:
    """``low``, ``normal`` or ``high`` (any case) as a :class:`Priority`."""
    try:
        return Priority(text.strip().upper())
    except ValueError:
        choices = ", ".join(p.value.lower() for p in Priority)
        raise RequestOptionError(f"not a priority: {text!r} (one of {choices})") from None


def parse_deadline(text: str) -> int:
    """Milliseconds in ``90s``, ``30m``, ``24h``, ``1h30m`` or ``500ms``, for
    ``latency_budget_ms``; more than 0 and at most 2**31-1 ms, else RequestOptionError.

    Strict on purpose: a unit is required (is ``90`` seconds or milliseconds?), no fractions,
    signs, spaces or exponents, so a typo cannot become a deadline nobody meant.
    """
    cleaned = text.strip().lower()
    match = _DEADLINE.fullmatch(cleaned) if len(cleaned) <= 32 else None
    if not cleaned or match is None:
        raise RequestOptionError(
            f"not a deadline: {text!r} (a whole number with a unit: 500ms, 90s, 30m, 24h, 1h30m)"
        )
    ms = sum(int(value) * _UNIT_MS[unit] for unit, value in match.groupdict().items() if value)
    if not 0 < ms <= MAX_DEADLINE_MS:
        raise RequestOptionError(
            f"deadline {text!r} is out of range: more than 0 and at most {MAX_DEADLINE_MS} ms "
            "(about 24.8 days)"
        )
    return ms


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
