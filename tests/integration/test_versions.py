"""Canary and shadow versions on a real broker: one completion per request, shadows never end one.

An image alias on three offline models: the primary chain (``offline-1``), a canary taking 30 %
of the requests (``offline-2``) and a shadow mirroring 50 % (``offline-3``), each at its own
price per image. 40 requests through one worker running every stage: every request ends in
exactly one DELIVERED completion, served by the branch its id draws (canary or primary); every
mirrored request has a shadow copy generated, validated and recorded on ``.shadows``, booked
in the shadow spend lane, never on ``.approved``/``.rejected``, never delivered or completed;
``models compare`` reads the three rungs back with the numbers the run must give.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.inference.routing.config import load_routing
from agents.inference.routing.versions import CANARY, PRIMARY, rung_of, shadow_of
from assetline.cli import cli
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from assetline.models_compare import read_comparison
from schemas.records import (
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    ModelSpec,
    RawAsset,
    ValidatedAsset,
)
from streams.codecs import Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import submit_requests

pytestmark = pytest.mark.integration

ROUTING = """
providers:
  main: {type: offline}
  next: {type: offline}
  shade: {type: offline}
aliases:
  hero:
    chain: [{provider: main, model: offline, version: offline-1, price: {per_image: 0.04}}]
    canary: {provider: next, model: offline, version: offline-2, share: 0.3,
             price: {per_image: 0.03}}
    shadow: {provider: shade, model: offline, version: offline-3, share: 0.5,
             price: {per_image: 0.02}}
  broken:
    chain: [{provider: main, model: offline, version: offline-1}]
    shadow: {provider: shade, model: offline, version: no-such-version, share: 1.0}
default_alias: hero
"""
COUNT = 40
BROKEN = 5


def _request(run: str, n: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"v-{run}-{n:02d}",
        idempotency_key=f"v-{run}-{n:02d}",
        tenant="acme",
        campaign_id="versions",
        kind=AssetKind.IMAGE,
        prompt_template="A lighthouse, number ${n}",
        variables={"n": str(n)},
        model=ModelSpec(alias="hero"),
        constraints=Constraints(width=64, height=64, format="png"),
    )


def _broken(run: str, n: int) -> GenerationRequest:
    """A request whose shadow always fails (the offline provider has no such version)."""
    return GenerationRequest(
        request_id=f"b-{run}-{n}",
        idempotency_key=f"b-{run}-{n}",
        tenant="acme",
        campaign_id="versions",
        kind=AssetKind.TEXT,
        prompt_template="A headline",
        model=ModelSpec(alias="broken"),
    )


def _decoded(settings: Settings, topic: str, codec: object) -> list[object]:
    records = asyncio.run(read_to_end(settings, topic))
    return [codec.decode(r.value, list(r.headers or ())) for r in records]  # type: ignore[attr-defined]


def _wait(check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_canary_and_shadow_versions_on_a_real_line(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(ROUTING)
    config = load_routing(routing_file)
    settings = line_settings.model_copy(update={"routing_file": routing_file})
    names = TopicNames.with_prefix(settings.topic_prefix)
    codecs = Codecs.load()
    run = uuid.uuid4().hex[:8]
    requests = [_request(run, n) for n in range(COUNT)]
    branch = {r.request_id: rung_of(r, config) for r in requests}
    mirrored = {r.request_id for r in requests if shadow_of(r, config) is not None}
    counts = Counter(branch.values())
    assert counts[CANARY] > 0  # the draw gives all three rungs
    assert counts[PRIMARY] > 0
    assert mirrored

    broken = [_broken(run, n) for n in range(BROKEN)]
    asyncio.run(submit_requests(settings, [*requests, *broken]))
    worker = start_worker(settings)
    seen = asyncio.run(await_completions(settings, list(branch), timeout=120))

    # Exactly one completion per request, DELIVERED, by the branch its id draws.
    assert sorted(seen) == sorted(branch), worker.log_tail()
    for request_id, events in seen.items():
        assert len(events) == 1, (request_id, events)
        [done] = events
        assert done.status is CompletionStatus.DELIVERED, done.reasons
        assert done.rung == branch[request_id]
        version = "offline-2" if done.rung == CANARY else "offline-1"
        assert done.model_version == version
        assert done.cost == pytest.approx(0.03 if done.rung == CANARY else 0.04)

    # Shadows: generated and validated once each, recorded on .shadows only.
    def shadows() -> list[ValidatedAsset]:
        return _decoded(settings, names.shadows, codecs.validated)  # type: ignore[return-value]

    failing = {r.request_id for r in broken}
    assert _wait(lambda: {s.raw.request.request_id for s in shadows()} == mirrored | failing)
    recorded = [s for s in shadows() if s.raw.alias == "hero"]
    assert all(s.raw.rung == "shadow" and s.raw.model_version == "offline-3" for s in recorded)
    assert all(s.raw.error is None and s.report.verdict.value == "PASS" for s in recorded)
    raws: list[RawAsset] = _decoded(settings, names.raw, codecs.raw)  # type: ignore[assignment]
    assert {r.request.request_id for r in raws if r.rung == "shadow"} == mirrored | failing
    for topic in (names.approved, names.rejected):
        validated: list[ValidatedAsset] = _decoded(settings, topic, codecs.validated)  # type: ignore[assignment]
        assert not [v for v in validated if v.raw.rung == "shadow"]
    # A shadow that fails is an ERROR on .shadows; its primary is delivered all the same.
    for copy in shadows():
        if copy.raw.alias == "broken":
            assert copy.raw.error is not None
            assert copy.raw.error.code == "provider.unknown_version"
    ends = asyncio.run(await_completions(settings, failing, timeout=60))
    assert {rid: [e.status for e in events] for rid, events in ends.items()} == {
        rid: [CompletionStatus.DELIVERED] for rid in failing
    }
    completed = _decoded(settings, names.completed, codecs.completed)
    assert len(completed) == COUNT + BROKEN
    assert not [c for c in completed if c.rung == "shadow"]  # type: ignore[attr-defined]
    assert len(list(settings.delivery_dir.rglob("*.png"))) == COUNT

    # The shadow lane of the spend ledger holds the shadows' cost, and nothing else does.
    spend = asyncio.run(read_to_end(settings, names.spend_shadow))
    latest = {json.loads(r.key): json.loads(r.value) for r in spend}
    shadow_total = sum(v for k, v in latest.items() if k.startswith("tenant:acme|shadow|"))
    assert shadow_total == pytest.approx(0.02 * len(mirrored))

    # models compare: three rungs with the numbers this run must give.
    comparison = asyncio.run(read_comparison(settings, codecs, "hero"))
    by = {stats.rung: stats.as_dict() for stats in comparison.rungs}
    assert list(by) == ["primary", "canary", "shadow"]
    assert by["primary"]["requests"] == counts[PRIMARY]
    assert by["canary"]["requests"] == counts[CANARY]
    assert by["shadow"]["requests"] == len(mirrored)
    assert by["canary"]["model"] == "next/offline-2"
    assert by["shadow"]["model"] == "shade/offline-3"
    for rung, price in (("primary", 0.04), ("canary", 0.03), ("shadow", 0.02)):
        row = by[rung]
        assert row["approval_rate"] == 1.0
        assert row["regeneration_rate"] == 0.0
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p95"]
        assert row["cost_per_asset_usd"] == pytest.approx(price)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("ASSETLINE_TOPIC_PREFIX", settings.topic_prefix)
    table = CliRunner().invoke(cli, ["models", "compare", "--alias", "hero"])
    assert table.exit_code == 0, table.output
    print(table.output)
    assert [line.split()[0] for line in table.output.splitlines()[2:]] == list(by)
    as_json = CliRunner().invoke(cli, ["models", "compare", "--alias", "hero", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert [row["requests"] for row in json.loads(as_json.output)["rungs"]] == [
        by[rung]["requests"] for rung in by
    ]
    failed = {
        s.rung: s.as_dict() for s in asyncio.run(read_comparison(settings, codecs, "broken")).rungs
    }
    assert failed["primary"]["approval_rate"] == 1.0
    assert (failed["shadow"]["requests"], failed["shadow"]["approval_rate"]) == (BROKEN, 0.0)
