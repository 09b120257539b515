"""``assetline policy check`` on a real line: a stricter profile finds exactly the assets it
would now reject, reads their bytes from the blob store, and produces nothing.

A real worker delivers copy under a lax ``acme`` profile; then the dry run re-checks the range
under a stricter ``acme`` (a banned term, a judge that must not be asked), through ``completed``
(joined to ``.approved``) and ``raw``, with one delivered asset's blob deleted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from click.testing import CliRunner

from assetline.cli import cli
from assetline.client import LineClient
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, GenerationRequest
from streams.blobs import LocalBlobStore
from streams.codecs import Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
CODECS = Codecs.load()
PERSONAS = {
    "pc-0": "trail runners",
    "pc-1": "zorblax fans",  # the strict profile bans "zorblax"
    "pc-2": "city cyclists",
    "pc-3": "ZORBLAX collectors",
    "pc-4": "weekend hikers",  # its blob is deleted before the dry run
}


def _request(rid: str, persona: str, profile: str | None = "acme") -> GenerationRequest:
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${persona}",
        variables={"persona": persona},
        brand_profile_id=profile,
    )


async def _end_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """End offsets of every topic of this line (its prefix), to prove nothing was written."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(settings.topic_prefix)]
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def test_a_stricter_profile_names_exactly_the_delivered_assets_it_would_reject(
    line_settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.json").write_text(json.dumps({"id": "acme", "text": {"max_chars": 500}}))
    settings = line_settings.model_copy(update={"profiles_dir": profiles})
    worker = start_worker(settings)
    requests = [_request(rid, persona) for rid, persona in PERSONAS.items()]
    requests.append(_request("pc-other", "zorblax fans", profile=None))  # no profile: not acme's

    async def deliver() -> dict[str, CompletionStatus]:
        async with LineClient(settings) as client:
            await client.submit(requests)
            done = await client.await_completions([r.request_id for r in requests], 90)
        return {rid: c.status for rid, c in done.items()}

    statuses = asyncio.run(deliver())
    assert statuses == {r.request_id: CompletionStatus.DELIVERED for r in requests}, (
        worker.log_tail()
    )
    worker.stop(timeout=20)

    names = TopicNames.with_prefix(settings.topic_prefix)
    raws = [
        CODECS.raw.decode(r.value or b"") for r in asyncio.run(read_to_end(settings, names.raw))
    ]
    gone = next(raw.blob for raw in raws if raw.request.request_id == "pc-4")
    assert gone is not None
    LocalBlobStore(settings.blob_dir).path_for(gone.sha256).unlink()

    strict = tmp_path / "acme-strict.yaml"
    strict.write_text(
        "id: acme\n"
        "text:\n  max_chars: 500\n  prohibited: [zorblax]\n"
        "judge: {provider: nowhere, model: m, rubric: on brand}\n"
    )
    env = {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ASSETLINE_TOPIC_PREFIX": settings.topic_prefix,
        "ASSETLINE_APP_ID": settings.app_id,
        "ASSETLINE_BLOB_DIR": str(settings.blob_dir),
    }
    before = asyncio.run(_end_offsets(settings))
    reports = {}
    for topic in ("completed", "raw"):
        out = tmp_path / f"{topic}.json"
        args = ["policy", "check", "--profile", str(strict), "--topic", topic, "--from", "0"]
        result = CliRunner().invoke(cli, [*args, "--json", str(out), "--workers", "1"], env=env)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert "the AI judge is not asked in a dry run" in result.output
        reports[topic] = json.loads(out.read_text())
    assert asyncio.run(_end_offsets(settings)) == before  # nothing produced, anywhere

    for topic, report in reports.items():
        assert report["examined"] == 6, (topic, report)
        assert report["checked"] == 4
        assert report["would_fail"] == {"count": 2, "request_ids": ["pc-1", "pc-3"]}
        prohibited = report["checks"]["text.prohibited"]
        assert (prohibited["checked"], prohibited["failed"]) == (4, 2)
        assert prohibited["request_ids"] == ["pc-1", "pc-3"]
        assert "zorblax" in prohibited["messages"]["pc-1"].lower()
        assert report["checks"]["text.length"]["failed"] == 0
        assert report["skipped"] == {
            "blob.missing": {"count": 1, "request_ids": ["pc-4"]},
            "profile.other": {"count": 1, "request_ids": ["pc-other"]},
        }
    assert reports["completed"]["topic"] == names.completed
    assert reports["raw"]["topic"] == names.raw
