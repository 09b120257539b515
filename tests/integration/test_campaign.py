"""``assetline campaign`` against a real broker and worker: counts, idempotent re-runs, deadline."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner, Result

from assetline.campaign import expand, load_template, read_segments
from assetline.cli import cli
from assetline.dev.child_worker import WorkerProcess
from streams.codecs import Codecs
from streams.kafka import open_topic_reader, read_to_end
from streams.settings import Settings, settings_env
from streams.topics import TopicNames
from tests.integration.helpers import wait_ready

pytestmark = pytest.mark.integration

TEMPLATE = """\
tenant: acme
campaign_id: it-campaign
kind: TEXT
prompt_template: "Headline for ${persona} in ${locale} about ${product}"
variables: {product: the Aurora bottle}
constraints: {max_chars: 200}
metadata: {persona: "${persona}"}
"""
LOCALES = ("en-GB", "de-DE", "fr-FR")


def _write(tmp_path: Path, personas: int, failing: int) -> list[str]:
    """personas x 3 locales; the first ``failing`` rows name a provider that does not exist."""
    lines = ["persona,locale,@model.provider"]
    for i in range(personas):
        for locale in LOCALES:
            provider = "no-such-provider" if len(lines) <= failing else ""
            lines.append(f"persona {i},{locale},{provider}")
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "segments.csv").write_text("\n".join(lines) + "\n")
    return [
        "campaign",
        "--template",
        str(tmp_path / "template.yaml"),
        "--segments",
        str(tmp_path / "segments.csv"),
    ]


def _campaign(settings: Settings, args: list[str]) -> Result:
    env = {**settings_env(settings), "KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    return CliRunner().invoke(cli, args, env=env)


def _completions(settings: Settings) -> list[tuple[str, str, float]]:
    codecs = Codecs.load()
    topic = TopicNames.with_prefix(settings.topic_prefix).completed
    records = asyncio.run(read_to_end(settings.kafka_bootstrap, topic))
    out = []
    for record in records:
        done = codecs.completed.decode(record.value)
        out.append((done.request_id, done.status.value, done.cost))
    return out


async def _drained(settings: Settings, timeout: float) -> None:
    """Wait until the worker's group committed every offset of the topics a request crosses."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    topics = (names.requests, names.raw, names.approved, names.rejected)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        partitions = [TopicPartition(t, p) for t in topics for p in range(3)]
        reader = await open_topic_reader(settings.kafka_bootstrap, names.requests)
        try:
            while time.monotonic() < deadline:
                ends = await reader.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(settings.app_id)
                if all(
                    ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp])
                    for tp in partitions
                ):
                    return
                await asyncio.sleep(0.5)
        finally:
            await reader.stop()
    finally:
        await admin.close()
    raise AssertionError(f"the worker did not drain {topics} within {timeout}s")


def test_campaign_completes_with_counts_and_reruns_add_no_completions(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    args = [*_write(tmp_path, personas=10, failing=3), "--deadline", "75s", "--json"]
    worker = start_worker(line_settings)
    first = _campaign(line_settings, args)
    # Not all DELIVERED (3 FAILED): exit 4, not 0 as before, naming the counts and a reason.
    assert first.exit_code == 4, first.output + worker.log_tail()
    assert first.stderr.splitlines()[-1].startswith("Error: 27 of 30 delivered; 3 FAILED; e.g. ")
    report = json.loads(first.stdout.splitlines()[-1])
    assert (report["rows"], report["submitted"], report["missing_count"]) == (30, 30, 0)

    completions = _completions(line_settings)
    by_status = Counter(status for _, status, _ in completions)
    assert len(completions) == 30
    assert {k: v for k, v in report["by_status"].items() if v} == dict(by_status)
    assert dict(by_status) == {"DELIVERED": 27, "FAILED": 3}
    assert report["cost"] == pytest.approx(sum(cost for *_, cost in completions))

    second = _campaign(line_settings, args)  # same template + rows: same ids, resubmitted
    assert second.exit_code == 4, second.output
    again = json.loads(second.stdout.splitlines()[-1])
    assert again["by_status"] == report["by_status"]
    asyncio.run(_drained(line_settings, timeout=45))  # the resubmissions went all the way
    rerun = _completions(line_settings)
    assert len(rerun) == 30  # the ledger kept one completion per id
    assert {rid for rid, *_ in rerun} == {rid for rid, *_ in completions}

    third = _campaign(line_settings, [*args, "--skip-completed"])  # nothing left to generate
    assert third.exit_code == 4, third.output
    skipped = json.loads(third.stdout.splitlines()[-1])
    assert skipped["submitted"] == 0
    assert skipped["by_status"] == report["by_status"]
    assert "30 request(s) already completed: submitting 0" in third.stderr


def test_deadline_with_outstanding_requests_exits_3_and_names_them(
    line_settings: Settings, tmp_path: Path
) -> None:
    args = _write(tmp_path, personas=2, failing=0)  # 6 requests, and no worker to serve them
    ids = expand(
        load_template(tmp_path / "template.yaml"), read_segments(tmp_path / "segments.csv")
    ).request_ids
    started = time.monotonic()
    result = _campaign(line_settings, [*args, "--deadline", "2s"])
    assert result.exit_code == 3, result.output
    assert time.monotonic() - started < 30
    assert "MISSING     6" in result.stdout
    error = result.stderr.splitlines()[-1]
    assert "deadline 2s passed with 6 of 6 request(s) outstanding" in error
    assert ", ".join(ids[:5]) + " (and 1 more)" in error

    # Nothing completed yet: --skip-completed still submits every request (again).
    again = _campaign(line_settings, [*args, "--deadline", "1s", "--skip-completed"])
    assert again.exit_code == 3, again.output
    assert "0 request(s) already completed: submitting 6" in again.stderr


REVIEWED_PROFILE = """\
id: strict
max_attempts: 1   # no repair attempt: a failure goes straight to review
review: true
text: {required: ["Offer ends 31 March."]}
"""


def test_requests_waiting_in_review_are_reported_in_review_not_missing(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "strict.yaml").write_text(REVIEWED_PROFILE)
    settings = line_settings.model_copy(update={"profiles_dir": profiles})
    args = _write(tmp_path, personas=1, failing=0)  # 3 requests
    (tmp_path / "template.yaml").write_text(TEMPLATE + "brand_profile_id: strict\n")
    worker = start_worker(settings)
    wait_ready(worker)  # the deadline, waited out in full, is then only the requests' time
    result = _campaign(settings, [*args, "--deadline", "15s", "--json"])
    assert result.exit_code == 3, result.output + worker.log_tail()
    report = json.loads(result.stdout.splitlines()[-1])
    assert (report["in_review_count"], report["missing_count"]) == (3, 0), worker.log_tail()
    assert "3 waiting in review (assetline review list --campaign it-campaign)" in result.stderr
    assert "0/3 done  IN_REVIEW 3" in result.stderr  # the live line while it waited
    assert "missing:" not in result.stderr
