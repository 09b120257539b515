"""100 assets to S3 (a local moto server), and a worker killed mid-run.

After the restart every request has one completion and one object whose bytes the
completion's sha256 names; an object the killed worker had already written is not uploaded
again (the sink finds it by its sha256 first).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import botocore.session
import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from streams.client import LineClient, await_completions
from streams.records import AssetKind, CompletionStatus, Constraints, GenerationRequest
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

BUCKET = "assets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def s3() -> Iterator[tuple[str, object]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = botocore.session.get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id="AKIATEST",
            aws_secret_access_key="test-secret",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        server.stop()


def test_killed_worker_still_gives_one_object_and_one_completion_per_request(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    s3: tuple[str, object],
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
            "api_keys": {"s3": SecretStr("test-secret")},
        }
    )
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
        )
        for i in range(100)
    ]
    ids = [r.request_id for r in requests]

    async def submit() -> None:
        await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
        async with LineClient(settings) as line_client:
            await line_client.submit(requests)

    asyncio.run(submit())
    first = start_worker(settings)
    deadline = time.monotonic() + 90
    seen: dict[str, object] = {}
    while time.monotonic() < deadline and len(seen) < 20:
        seen = asyncio.run(await_completions(settings, ids, timeout=0.5))
    first.kill()
    assert 20 <= len(seen) < len(ids), "the kill must land mid-run"

    second = start_worker(settings)
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert set(completions) == set(ids), second.log_tail()
    assert {rid: len(c) for rid, c in completions.items()} == {rid: 1 for rid in ids}

    for rid in ids:
        (done,) = completions[rid]
        assert done.status is CompletionStatus.DELIVERED, done.reasons
        assert done.location is not None
        key = done.location.removeprefix(f"s3://{BUCKET}/")
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()  # type: ignore[attr-defined]
        assert hashlib.sha256(body).hexdigest() == done.sha256
