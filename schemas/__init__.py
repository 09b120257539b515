"""The Avro contracts (``*.avsc``): assetline's public API for producers and consumers.

Files are generated from :mod:`schemas.records` by ``assetline schemas export``; a test fails if
a committed file drifts from its model. They ship as package data so an installed worker finds
them without the source tree.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

#: Record name -> file name in this package.
FILES: dict[str, str] = {
    "GenerationRequest": "generation_request.avsc",
    "RawAsset": "raw_asset.avsc",
    "ValidatedAsset": "validated_asset.avsc",
    "AssetCompleted": "asset_completed.avsc",
    "Alert": "alert.avsc",
    "ReviewDecision": "review_decision.avsc",
    "ReviewItem": "review_item.avsc",
    "WebhookJob": "webhook_job.avsc",
}


def load(record_name: str) -> dict[str, Any]:
    """Parse the committed schema of a top-level record."""
    text = resources.files(__name__).joinpath(FILES[record_name]).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
