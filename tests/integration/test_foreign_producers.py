"""Requests produced by the Java and Node examples (examples/producers/) go through the line.

Each producer runs as a user would run it, as a subprocess against the session's broker; the
line's own completion reader then proves every request ended in exactly one DELIVERED
completion carrying what that producer set. The ``--await`` runs also prove each example can
decode ``AssetCompleted`` itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetCompleted
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.examples._producers import ROOT, SCHEMAS, java_command, node_command, run

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
AWAIT_S = 90


@dataclass(frozen=True)
class ProducerRun:
    """One invocation of an example producer and what it must have produced."""

    language: str
    kind: str
    count: int
    wait: bool  # pass --await: the producer itself reads and decodes the completions
    run_id: str

    @property
    def tenant(self) -> str:
        return f"{self.language}-tenant"

    @property
    def campaign(self) -> str:
        return f"{self.language}-{self.kind.lower()}"

    def expected_ids(self) -> list[str]:
        return [f"{self.run_id}-{i:05d}" for i in range(self.count)]

    def command(self, settings: Settings) -> list[str]:
        base = java_command() if self.language == "java" else node_command()
        args = {
            "bootstrap": settings.kafka_bootstrap,
            "prefix": settings.topic_prefix,
            "run": self.run_id,
            "count": str(self.count),
            "kind": self.kind,
            "tenant": self.tenant,
            "campaign": self.campaign,
            "schemas": str(SCHEMAS),
        }
        if self.wait:
            args["await"] = str(AWAIT_S)
        return [*base, *(part for name, value in args.items() for part in (f"--{name}", value))]


def _runs() -> list[ProducerRun]:
    uid = uuid.uuid4().hex[:8]
    return [
        ProducerRun(language, kind, count, wait, f"{language}-{kind.lower()}-{uid}")
        for language in ("java", "node")
        for kind, count, wait in (("TEXT", 3, False), ("IMAGE", 2, True))
    ]


def _check_output(producer: ProducerRun, stdout: str) -> None:
    """stdout is one id per line, then (with --await) ``<id> <status> <location>`` lines."""
    lines = stdout.splitlines()
    ids = [line for line in lines if " " not in line]
    assert ids == producer.expected_ids(), stdout
    completions = [line.split(" ", 2) for line in lines if " " in line]
    if not producer.wait:
        assert completions == [], stdout
        return
    assert sorted(c[0] for c in completions) == producer.expected_ids(), stdout
    assert {c[1] for c in completions} == {"DELIVERED"}, stdout
    assert all(c[2].startswith("file://") for c in completions), stdout


def _check_completion(producer: ProducerRun, request_id: str, done: list[AssetCompleted]) -> None:
    assert len(done) == 1, f"{request_id} has {len(done)} completions"
    (completed,) = done
    assert completed.status.value == "DELIVERED", (request_id, completed.reasons)
    assert completed.tenant == producer.tenant
    assert completed.campaign_id == producer.campaign
    assert completed.kind.value == producer.kind
    assert completed.idempotency_key == request_id
    assert completed.location is not None
    assert completed.sha256 is not None


def test_java_and_node_requests_each_end_in_one_delivered_completion(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    # Build first: a cold Maven build must not eat into the completion timeouts.
    java_command()
    node_command()
    # Topics exist before anyone produces: auto-creation would pick the wrong partition count.
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    worker = start_worker(line_settings)

    producers = _runs()
    started = time.monotonic()
    for producer in producers:
        done = run(producer.command(line_settings), cwd=ROOT, timeout=AWAIT_S + 60)
        _check_output(producer, done.stdout)
    by_id = {rid: p for p in producers for rid in p.expected_ids()}
    assert len(by_id) == 10

    completions = asyncio.run(
        await_completions(
            line_settings, list(by_id), timeout=max(5, AWAIT_S - (time.monotonic() - started))
        )
    )
    missing = sorted(set(by_id) - set(completions))
    assert not missing, f"no completion for {missing}; worker log:\n{worker.log_tail()}"
    for request_id, producer in by_id.items():
        _check_completion(producer, request_id, completions[request_id])


def _clash(first: ProducerRun, second: ProducerRun, settings: Settings) -> None:
    """``second`` reuses ``first``'s ids for other requests: it must not report first's
    completions as its own (it did, exit 0), but say so and exit 4."""
    run(first.command(settings), cwd=ROOT, timeout=AWAIT_S + 60)
    done = subprocess.run(
        second.command(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=AWAIT_S + 60,
        check=False,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    completions = [line for line in done.stdout.splitlines() if " " in line]
    assert completions == [], done.stdout  # nothing printed as if it were ours
    assert f"{first.run_id}-00000 completed for another request: kind" in done.stderr
    assert f"(asked {json.dumps(second.kind) if second.language == 'node' else second.kind})" in (
        done.stderr
    )
    assert "choose another --run" in done.stderr


def test_a_producer_reusing_another_runs_ids_fails_instead_of_taking_its_results(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    java_command()
    node_command()
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    start_worker(line_settings)
    shared = f"demo-{uuid.uuid4().hex[:8]}"  # the README used to give both the same --run
    _clash(
        ProducerRun("java", "TEXT", 2, True, shared),
        ProducerRun("node", "IMAGE", 2, True, shared),
        line_settings,
    )
    other = f"demo-{uuid.uuid4().hex[:8]}"
    _clash(
        ProducerRun("node", "TEXT", 2, True, other),
        ProducerRun("java", "IMAGE", 2, True, other),
        line_settings,
    )
