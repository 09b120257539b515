"""Copy through the whole line on a real broker: completions, sidecars and XMP carry sentiment."""

from __future__ import annotations

import asyncio
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

from agents.deliver.metadata.xmp import NS_ASSETLINE
from agents.validate.checks.sentiment import label_for, score_text
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.settings import Settings
from tests.integration.helpers import submit_requests

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]


def test_delivered_copy_carries_its_sentiment_on_the_completion_and_in_the_sidecar(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"{run}-{i}",
            idempotency_key=f"{run}-{i}",
            tenant="acme",
            campaign_id="it",
            kind=AssetKind.TEXT,
            prompt_template="Headline for ${persona}",
            variables={"persona": f"persona-{i}"},
            constraints=Constraints(max_chars=200),
        )
        for i in range(3)
    ]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    assert set(completions) == set(ids), worker.log_tail()
    for request_id in ids:
        (done,) = completions[request_id]
        assert done.status.value == "DELIVERED", done.reasons
        assert done.location is not None
        path = Path(unquote(urlparse(done.location).path))
        # The score on the completion is the one the delivered bytes get.
        expected = score_text(path.read_text(encoding="utf-8"))
        assert done.sentiment == expected.score
        assert done.sentiment_label == expected.label == label_for(expected.score)
        sidecar = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))
        assert sidecar["sentiment"] == f"{expected.score:.4f}"
        assert sidecar["sentiment_label"] == expected.label


def test_an_image_made_from_copy_carries_the_copys_sentiment_in_its_xmp_and_completion(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    run = uuid.uuid4().hex[:8]
    headline = "Sunny days ahead: our happiest summer sale!"
    variables = [{"headline": headline, "persona": "runner"}, {"persona": "runner"}]
    requests = [
        GenerationRequest(
            request_id=f"{run}-img-{i}",
            idempotency_key=f"{run}-img-{i}",
            tenant="acme",
            campaign_id="it",
            kind=AssetKind.IMAGE,
            prompt_template="A bright poster for ${persona}",
            variables=chosen,
            constraints=Constraints(width=96, height=64, format="png"),
        )
        for i, chosen in enumerate(variables)
    ]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    assert set(completions) == set(ids), worker.log_tail()
    expected = score_text(headline)
    xmp_fields: dict[str, dict[str, str]] = {}
    for request_id in ids:
        (done,) = completions[request_id]
        assert done.status.value == "DELIVERED", done.reasons
        assert done.location is not None
        path = Path(unquote(urlparse(done.location).path))
        with Image.open(path) as image:
            packet = image.info["XML:com.adobe.xmp"]
        prefix = f"{{{NS_ASSETLINE}}}"
        xmp_fields[request_id] = {
            el.tag.removeprefix(prefix): el.text or ""
            for el in ET.fromstring(packet).iter()
            if el.tag.startswith(prefix)
        }
        assert xmp_fields[request_id]["request_id"] == request_id
    with_copy, without = (completions[request_id][0] for request_id in ids)
    assert (with_copy.sentiment, with_copy.sentiment_label) == (expected.score, "positive")
    assert xmp_fields[ids[0]]["sentiment"] == f"{expected.score:.4f}"
    assert xmp_fields[ids[0]]["sentiment_label"] == "positive"
    assert (without.sentiment, without.sentiment_label) == (None, None)
    assert "sentiment" not in xmp_fields[ids[1]]
