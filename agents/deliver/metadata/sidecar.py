"""JSON sidecar with the provenance, for assets (text, JSON, code) that have no metadata slot."""

from __future__ import annotations

import json
from dataclasses import asdict

from agents.deliver.metadata.fields import DIGITAL_SOURCE_TYPE, Provenance


def sidecar_json(p: Provenance) -> bytes:
    """UTF-8 JSON with sorted keys, so the same provenance always gives the same bytes.

    Writing into a text asset itself would change what the customer asked for, so the
    provenance travels next to it instead.
    """
    doc = asdict(p)
    if p.sentiment is None:  # only scored copy says anything about sentiment
        del doc["sentiment"], doc["sentiment_label"]
    doc["metadata"] = dict(p.metadata)
    doc["description"] = p.description()
    doc["digital_source_type"] = DIGITAL_SOURCE_TYPE
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2).encode(
        "utf-8", "surrogatepass"
    )
