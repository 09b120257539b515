"""Two workers with separate data folders (and separate local blob folders, unused) share one
S3-compatible blob store (moto's server on 127.0.0.1): a partition that moves from one worker
to the other is read there, including assets a person approves after the move. Zero
``blob.missing``: with the local store this very sequence fails the approved assets.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.broker import free_ports
from assetline.dev.child_worker import WorkerProcess
from assetline.review import load_items, new_decision, send_decision
from schemas.records import (
    AssetCompleted,
    AssetKind,
    Constraints,
    GenerationRequest,
    ReviewAction,
    ReviewStatus,
)
from streams.codecs import Codecs
from streams.settings import Settings
from tests.integration.helpers import UNSATISFIABLE_SCHEMA, mixed_requests, submit_requests
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_s3

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]

PROFILE = """
id: reviewed
name: Reviewed
max_attempts: 1
review: true
"""


def review_requests(run: str, count: int) -> list[GenerationRequest]:
    """JSON the offline provider cannot satisfy, under a profile that sends failures to review."""
    return [
        GenerationRequest(
            request_id=f"{run}-review-{i}",
            idempotency_key=f"{run}-review-{i}",
            tenant="acme",
            campaign_id="it",
            kind=AssetKind.JSON,
            prompt_template="SKU",
            constraints=Constraints(json_schema=UNSATISFIABLE_SCHEMA),
            brand_profile_id="reviewed",
        )
        for i in range(count)
    ]


def members(worker: WorkerProcess) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{worker.settings.web_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        if family.name == "assetline_group_members":
            return family.samples[0].value
    return None


def wait_for(what: str, check: Callable[[], bool], timeout: float, *workers: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(w.log_tail(60) for w in workers)
    raise AssertionError(f"{what} did not happen within {timeout}s\n{tails}")


def pending(settings: Settings, ids: list[str]) -> bool:
    items = asyncio.run(load_items(settings, Codecs.load()))
    return all(i in items and items[i].status is ReviewStatus.PENDING for i in ids)


def one_each(
    completions: dict[str, list[AssetCompleted]], ids: list[str], *workers: WorkerProcess
) -> dict[str, AssetCompleted]:
    missing = [i for i in ids if i not in completions]
    tails = "\n".join(w.log_tail(80) for w in workers)
    assert not missing, f"{len(missing)} without completion: {missing[:5]}\n{tails}"
    doubled = {i: len(completions[i]) for i in ids if len(completions[i]) != 1}
    assert not doubled, f"more than one completion: {doubled}"
    return {i: completions[i][0] for i in ids}


def test_two_workers_share_claim_checks_through_a_partition_move(
    line_settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    bucket = f"claims-{uuid.uuid4().hex[:10]}"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "reviewed.yaml").write_text(PROFILE)
    with moto_s3(bucket) as (endpoint, admin):
        shared = line_settings.model_copy(
            update={
                "blob_store": "s3",
                "blob_s3_endpoint_url": endpoint,
                "blob_s3_bucket": bucket,
                "blob_s3_prefix": "line",
                "blob_s3_access_key_id": ACCESS_KEY_ID,
                "blob_s3_secret_access_key": SecretStr(SECRET_ACCESS_KEY),
                "blob_s3_timeout_s": 10.0,
                "profiles_dir": profiles,
                "blob_sweep_interval_s": 2.0,  # nothing is old enough to go: it must keep all
            }
        )
        port_a, port_b = free_ports(2)
        settings_a = shared.model_copy(
            update={
                "web_port": port_a,
                "data_dir": tmp_path / "worker-a",
                "blob_dir": tmp_path / "blobs-a",
            }
        )
        settings_b = shared.model_copy(
            update={
                "web_port": port_b,
                "data_dir": tmp_path / "worker-b",
                "blob_dir": tmp_path / "blobs-b",
            }
        )
        run = uuid.uuid4().hex[:8]
        first = mixed_requests(30, run=f"{run}a")
        to_review = review_requests(run, 4)
        first_ids = [e.request.request_id for e in first]
        review_ids = [r.request_id for r in to_review]

        # Worker A alone: it generates every blob of the first burst, and the review items.
        asyncio.run(submit_requests(shared, [e.request for e in first] + to_review))
        worker_a = start_worker(settings_a)
        done = asyncio.run(await_completions(shared, first_ids, timeout=150))
        statuses = one_each(done, first_ids, worker_a)
        for expected in first:
            assert statuses[expected.request.request_id].status.value == expected.status
        wait_for("4 pending review items", lambda: pending(shared, review_ids), 90, worker_a)
        items = asyncio.run(load_items(shared, Codecs.load()))
        held = {items[i].asset.raw.blob.sha256 for i in review_ids if items[i].asset.raw.blob}
        assert held, "the review items carry claim checks"

        # Worker B joins; a second burst is sent; A stops mid-stream: B takes every partition.
        worker_b = start_worker(settings_b)
        wait_for("B joined", lambda: members(worker_b) == 2, 120, worker_a, worker_b)
        second = mixed_requests(30, run=f"{run}b")
        second_ids = [e.request.request_id for e in second]
        asyncio.run(submit_requests(shared, [e.request for e in second]))
        assert worker_a.stop(timeout=60) == 0, worker_a.log_tail()
        wait_for("B alone", lambda: members(worker_b) == 1, 120, worker_b)

        # A person approves three assets A generated, and rejects one; B delivers them.
        codecs = Codecs.load()
        for i, request_id in enumerate(review_ids):
            action = ReviewAction.REJECT if i == 3 else ReviewAction.APPROVE
            decision = new_decision(request_id, action, "ana", "after the move")
            asyncio.run(send_decision(shared, codecs, decision))

        done = asyncio.run(await_completions(shared, second_ids + review_ids, timeout=180))
        ended = one_each(done, second_ids + review_ids, worker_b)
        for expected in second:
            got = ended[expected.request.request_id]
            assert got.status.value == expected.status, (expected.request, got.reasons)
        for i, request_id in enumerate(review_ids):
            got = ended[request_id]
            assert got.status.value == ("REJECTED" if i == 3 else "DELIVERED"), got.reasons
        every = list(statuses.values()) + list(ended.values())
        assert not [c for c in every if any("blob." in r for r in c.reasons)]
        for log in (worker_a.log_tail(100_000), worker_b.log_tail(100_000)):
            assert "blob.missing" not in log

        # The sweep timer ran on the worker holding partition 0 of .requests (B, alone now)
        # and deleted nothing: every blob is younger than the topics' retention.
        wait_for("a sweep on B", lambda: "blob sweep: " in worker_b.log_tail(100_000), 30, worker_b)
        sweeps = [
            line for line in worker_b.log_tail(100_000).splitlines() if "blob sweep: " in line
        ]
        assert all(" 0 deleted (0 bytes)" in line for line in sweeps), sweeps

        # Every claim check lives in the bucket; the workers' local blob folders stay empty.
        listed = admin.list_objects_v2(Bucket=bucket, Prefix="line/")
        stored = {item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", [])}
        assert held <= stored  # what A wrote and B read after the move
        assert len(stored) >= 10  # the bursts' distinct outputs (identical bytes are one blob)
        for folder in (settings_a.blob_dir, settings_b.blob_dir):
            assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))
        print(
            f"\n{len(first_ids) + len(review_ids)} requests on A, {len(second_ids)} sent as A "
            f"stopped, 3 approved after the move; {len(stored)} blobs in the bucket"
        )
