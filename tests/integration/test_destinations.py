"""Destinations on a real broker: S3 (a local moto server), a dead HTTP DAM, the filesystem.

Assets are routed per tenant; what lands in S3 is the labelled file the completion's sha256
names; a destination that stays down is retried, then the request completes FAILED and the
approved asset waits on the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.broker import free_port
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest
from streams.dead_letters import header_map
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.s3_server import moto_s3

pytestmark = pytest.mark.integration

BUCKET = "assets"


@pytest.fixture
def s3() -> Iterator[tuple[str, object]]:
    with moto_s3(BUCKET) as server:
        yield server


def _requests(run: str) -> list[GenerationRequest]:
    out = []
    for tenant in ("bucket-co", "down-co", "acme"):
        for i, kind in enumerate((AssetKind.IMAGE, AssetKind.TEXT, AssetKind.IMAGE)):
            image = kind is AssetKind.IMAGE
            out.append(
                GenerationRequest(
                    request_id=f"{run}-{tenant}-{i}",
                    idempotency_key=f"{run}-{tenant}-{i}",
                    tenant=tenant,
                    campaign_id="launch",
                    kind=kind,
                    prompt_template="Hero for ${p}" if image else "Copy for ${p}",
                    variables={"p": f"persona {i}"},
                    constraints=Constraints(width=128, height=128, format="png")
                    if image
                    else Constraints(max_chars=200),
                )
            )
    return out


def test_assets_are_routed_per_tenant_and_a_dead_destination_is_dead_lettered(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    s3: tuple[str, object],
    tmp_path: Path,
) -> None:
    endpoint, client = s3
    dead_port = free_port()  # nothing listens here
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(
        f"""
destinations:
  local: {{type: filesystem, root: "{tmp_path / "delivery"}"}}
  bucket: {{type: s3, endpoint_url: "{endpoint}", bucket: {BUCKET}, access_key_id: AKIATEST,
           secret: s3, prefix: generated}}
  dam: {{type: http, url: "http://127.0.0.1:{dead_port}/upload/{{tenant}}/{{name}}",
        auth_header: Authorization, secret: dam}}
default: local
routes:
  - {{tenant: bucket-co, destination: bucket}}
  - {{tenant: down-co, destination: dam}}
retry: {{attempts: 3, base_delay_s: 0.01, max_delay_s: 0.05}}
"""
    )
    settings = line_settings.model_copy(
        update={
            "destinations_file": destinations,
            "api_keys": {"s3": SecretStr("test-secret"), "dam": SecretStr("Bearer dam-secret")},
        }
    )
    requests = _requests(uuid.uuid4().hex[:8])

    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=90))
    assert set(completions) == set(ids), worker.log_tail()
    assert all(len(c) == 1 for c in completions.values())

    for request in requests:
        (done,) = completions[request.request_id]
        if request.tenant == "down-co":
            assert done.status is CompletionStatus.FAILED
            assert done.reasons[0].startswith("sink.http.unreachable"), done.reasons
            continue
        assert done.status is CompletionStatus.DELIVERED, done.reasons
        assert done.location is not None
        if request.tenant == "bucket-co":
            assert done.location.startswith(f"s3://{BUCKET}/generated/bucket-co/launch/")
            key = done.location.removeprefix(f"s3://{BUCKET}/")
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
            assert hashlib.sha256(body).hexdigest() == done.sha256
            if request.kind is AssetKind.TEXT:  # the provenance sidecar sits next to it
                sidecar = client.get_object(Bucket=BUCKET, Key=key + ".json")["Body"].read()  # type: ignore[attr-defined]
                assert b"trainedAlgorithmicMedia" in sidecar
            else:
                assert b"trainedAlgorithmicMedia" in body  # XMP inside the PNG
        else:
            assert done.location.startswith("file://")

    names = TopicNames.with_prefix(settings.topic_prefix)
    dead = asyncio.run(read_topic(settings, names.deadletter, min_messages=3, timeout=10))
    codes = [header_map(m.headers).get("assetline.dlq.error.code") for m in dead]  # type: ignore[attr-defined]
    assert codes == ["sink.http.unreachable"] * 3
    assert "dam-secret" not in worker.log_tail(10_000)
