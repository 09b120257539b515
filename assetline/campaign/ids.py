"""Stable request ids: the same template and row always give the same id.

That is what makes a campaign idempotent: re-running it resubmits the same ids, the line's
ledger keeps one completion per id, and identical rows collapse into one request. The digest
covers the parsed documents in canonical JSON (sorted keys), so reformatting the template file
or reordering a JSONL row's keys keeps the ids, while any change of content makes new ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Hex digits of SHA-256 kept in an id: 80 bits, so collisions need ~10^12 rows.
DIGEST_CHARS = 20


def canonical_json(document: Any) -> str:
    """JSON with sorted keys and no spaces, so equal documents have equal text (YAML dates
    and other non-JSON scalars as their str)."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def template_digest(template: Mapping[str, Any]) -> str:
    """SHA-256 of the template's canonical JSON (computed once per campaign)."""
    return hashlib.sha256(canonical_json(template).encode("utf-8")).hexdigest()


def row_digest(template_sha: str, row: Mapping[str, str]) -> str:
    """SHA-256 of the template digest and the row's canonical JSON."""
    text = template_sha + "\n" + canonical_json(row)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def request_id_for(campaign_id: str, template_sha: str, row: Mapping[str, str]) -> str:
    """``<campaign_id>-<first 20 hex digits of sha256(template + row)>``."""
    return f"{campaign_id}-{row_digest(template_sha, row)[:DIGEST_CHARS]}"
