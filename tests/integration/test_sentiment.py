"""Copy through the whole line on a real broker: the completion and the sidecar carry sentiment."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

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
