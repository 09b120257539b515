"""100 assets to S3 (a local moto server) with a webhook each, and a worker killed mid-run.

After the restart every request has one completion, one object whose bytes the completion's
sha256 names, and webhooks that all carry one ``webhook-id`` (a call the killed worker made
may be made again: receivers dedupe on that id, which is what the id is for).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
)
from streams.settings import Settings
from tests.integration.helpers import submit_requests
from tests.support.provider_server import ProviderServer, Reply, provider_server
from tests.support.s3_server import moto_s3

pytestmark = pytest.mark.integration

# moto keeps buckets in process-wide state shared by every moto server in this process, so the
# bucket is this module's own: the listing below must see only this test's objects.
BUCKET = f"crash-{uuid.uuid4().hex[:12]}"
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def s3() -> Iterator[tuple[str, object]]:
    with moto_s3(BUCKET) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[ProviderServer]:
    with provider_server() as server:
        # A receiver that takes a moment, so the kill can land with calls in flight.
        server.handle("POST", "/hooks", lambda body: Reply(status=204, delay_s=0.02))
        yield server


def test_killed_worker_gives_one_object_one_webhook_id_one_completion_per_request(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    s3: tuple[str, object],
    receiver: ProviderServer,
    tmp_path: Path,
) -> None:
    endpoint, client = s3
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(
        f"""
destinations:
  bucket: {{type: s3, endpoint_url: "{endpoint}", bucket: {BUCKET}, access_key_id: AKIATEST,
           secret: s3}}
default: bucket
"""
    )
    settings = line_settings.model_copy(
        update={
            "destinations_file": destinations,
            "api_keys": {"s3": SecretStr("test-secret"), "webhooks": SecretStr(SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "webhook_schedule_s": (0.0, 0.5, 1.0),
        }
    )
    assert "notify" in settings.stages, "webhooks are part of the default line"
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"cr-{run}-{i:03d}",
            idempotency_key=f"cr-{run}-{i:03d}",
            tenant="acme",
            campaign_id="crash",
            kind=AssetKind.IMAGE if i % 2 else AssetKind.TEXT,
            prompt_template="Asset for ${p}",
            variables={"p": f"persona {i}"},
            constraints=Constraints(width=96, height=96, format="png") if i % 2 else Constraints(),
            callback_url=f"{receiver.url}/hooks",
        )
        for i in range(100)
    ]
    ids = [r.request_id for r in requests]

    asyncio.run(submit_requests(settings, requests))
    first = start_worker(settings)
    deadline = time.monotonic() + 90
    seen: dict[str, list[AssetCompleted]] = {}
    while time.monotonic() < deadline and len(seen) < 20:
        seen = asyncio.run(await_completions(settings, ids, timeout=0.5))
    first.kill()
    assert 20 <= len(seen) < len(ids), "the kill must land mid-run"

    second = start_worker(settings)
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert set(completions) == set(ids), second.log_tail(20_000)
    assert {rid: len(c) for rid, c in completions.items()} == {rid: 1 for rid in ids}

    keys: set[str] = set()
    for rid in ids:
        (done,) = completions[rid]
        assert done.status is CompletionStatus.DELIVERED, done.reasons
        assert done.location is not None
        key = done.location.removeprefix(f"s3://{BUCKET}/")
        keys.add(key)
        if key.endswith(".txt"):
            keys.add(key + ".json")  # the text asset's metadata sidecar
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
        assert hashlib.sha256(body).hexdigest() == done.sha256
    listed = client.list_objects_v2(Bucket=BUCKET)["Contents"]  # type: ignore[attr-defined]
    assert sorted(o["Key"] for o in listed) == sorted(keys)  # one object per request
    assert len(keys) == len(ids) * 3 // 2

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        called = {_request_id(c.body) for c in receiver.requests_to("/hooks")}
        if called >= set(ids):
            break
        time.sleep(0.2)
    verifier = Webhook(SECRET)
    ids_by_request: dict[str, set[str]] = {}
    for call in receiver.requests_to("/hooks"):
        payload = verifier.verify(call.body, dict(call.headers))
        rid = payload["data"]["request_id"]
        assert payload["data"]["location"] == completions[rid][0].location
        ids_by_request.setdefault(rid, set()).add(call.headers["webhook-id"])
    assert set(ids_by_request) == set(ids), second.log_tail()
    assert {rid: len(w) for rid, w in ids_by_request.items()} == {rid: 1 for rid in ids}


def _request_id(body: bytes) -> str:
    data: dict[str, str] = json.loads(body)["data"]
    return data["request_id"]
