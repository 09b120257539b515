"""The request timeline on a real line: every hop of a delivered request in order, requests
held for review counted as waiting in review, and ``assetline status`` printing it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from assetline.cli import cli
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from assetline.timeline import (
    CampaignProgress,
    EventKind,
    IndexFollower,
    RequestIndex,
    campaign_progress,
)
from schemas.records import AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.codecs import Codecs
from streams.settings import Settings, settings_env
from tests.integration.helpers import submit_requests

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]

#: Fails every text without the disclaimer, with no repair attempt: straight to review.
REVIEWED_PROFILE = """\
id: strict
max_attempts: 1
review: true
text: {required: ["Offer ends 31 March."]}
"""
HOPS = [
    EventKind.REQUESTED,
    EventKind.GENERATED,
    EventKind.VALIDATED,
    EventKind.DELIVERED,
    EventKind.COMPLETED,
]


def _request(run: str, i: int, **kw: object) -> GenerationRequest:
    fields: dict[str, object] = {
        "request_id": f"{run}-{i}",
        "idempotency_key": f"{run}-{i}",
        "tenant": "acme",
        "campaign_id": f"tl-{run}",
        "kind": AssetKind.IMAGE,
        "prompt_template": "Banner for ${persona}",
        "variables": {"persona": f"p{i}"},
        "constraints": Constraints(width=128, height=96, format="png"),
    }
    fields.update(kw)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


async def _follow_until(
    settings: Settings, ready: Callable[[RequestIndex], bool], timeout: float
) -> RequestIndex:
    """An index fed by a follower until ``ready`` says so (the follower keeps following)."""
    index = RequestIndex(Codecs.load())
    told: list[EventKind] = []
    follower = IndexFollower(
        settings, index, refresh_s=1.0, on_entries=lambda es: told.extend(e.kind for e in es)
    )
    async with follower:
        assert await follower.wait_caught_up(30)
        deadline = time.monotonic() + timeout
        # The follower's task feeds the index; its state is what is waited for.
        while not ready(index) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    # Live listeners hear of every entry the index took.
    indexed = [e.kind for rid in index.request_ids() for e in index.timeline(rid)]
    assert sorted(told) == sorted(indexed)
    return index


def test_a_delivered_request_shows_every_hop_and_status_prints_it(
    line_settings: Settings, start_worker: StartWorker, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "strict.yaml").write_text(REVIEWED_PROFILE)
    settings = line_settings.model_copy(update={"profiles_dir": profiles})
    run = f"tl{int(time.time() * 1000) % 10**8}"
    delivered = [_request(run, i) for i in range(3)]
    held = [
        _request(run, 10 + i, kind=AssetKind.TEXT, prompt_template="Copy for ${persona}",
                 constraints=Constraints(max_chars=200), brand_profile_id="strict")
        for i in range(2)
    ]  # fmt: skip
    failed = [
        _request(run, 20, kind=AssetKind.TEXT, prompt_template="Copy for ${persona}",
                 constraints=Constraints(max_chars=200), model=ModelSpec(provider="no-such"))
    ]  # fmt: skip
    requests = delivered + held + failed
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)
    ended = [r.request_id for r in delivered + failed]
    completions = asyncio.run(await_completions(settings, ended, timeout=120))
    assert set(completions) == set(ended), worker.log_tail()

    held_ids = {r.request_id for r in held}

    def settled(index: RequestIndex) -> bool:
        states = [index.state(rid) for rid in held_ids | set(ended)]
        return all(s is not None and (s.status or s.in_review) for s in states)

    started = time.perf_counter()
    index = asyncio.run(_follow_until(settings, settled, timeout=60))
    assert settled(index), worker.log_tail()
    print(f"indexed {index.records} records in {time.perf_counter() - started:.2f}s")

    # Every hop of each delivered request, in that order (other entries may sit between).
    for request in delivered:
        timeline = index.timeline(request.request_id)
        kinds = [e.kind for e in timeline if e.kind in HOPS]
        assert kinds == HOPS, [(e.kind, e.summary) for e in timeline]
        assert [e.at_ms for e in timeline] == sorted(e.at_ms for e in timeline)
        generated = next(e for e in timeline if e.kind is EventKind.GENERATED)
        assert generated.details["provider"] == "offline"
        assert generated.asset is not None
        assert generated.asset.startswith("file://")
        where = next(e for e in timeline if e.kind is EventKind.DELIVERED)
        assert where.details["location"] == completions[request.request_id][0].location

    # The held ones wait in review; the failed one is counted by its reason code.
    progress: CampaignProgress = campaign_progress(index, f"tl-{run}", expected=len(requests))
    assert progress.by_status["DELIVERED"] == 3
    assert progress.waiting_in_review == 2
    assert progress.by_status["IN_FLIGHT"] == 0
    assert progress.remaining == 0
    assert progress.failed_by_reason == {"routing.unknown_provider": 1}
    # Offline models are free unless priced: the cost is what the completions say.
    assert progress.cost == pytest.approx(sum(c[0].cost for c in completions.values()))
    for rid in held_ids:
        kinds = [e.kind for e in index.timeline(rid)]
        assert EventKind.SENT_TO_REVIEW in kinds
        assert EventKind.COMPLETED not in kinds

    # The terminal: `assetline status` prints the same hops, and --json the same events.
    env = {**settings_env(settings), "KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    rid = delivered[0].request_id
    result = CliRunner().invoke(cli, ["status", rid], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"request {rid}")
    # time, +seconds, topic, kind, attempt, summary: the kind column, in order
    kinds = [re.split(r"\s{2,}", line)[3] for line in lines[1:] if line.startswith("20")]
    assert [k for k in kinds if k in HOPS] == [k.value for k in HOPS], result.stdout
    assert f"delivered to {completions[rid][0].location}" in result.stdout
    as_json = CliRunner().invoke(cli, ["status", rid, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["status"] == "DELIVERED"
    assert [e["kind"] for e in report["events"] if e["kind"] in HOPS] == [k.value for k in HOPS]
    campaign = CliRunner().invoke(cli, ["status", "--campaign", f"tl-{run}", "--json"], env=env)
    assert campaign.exit_code == 0, campaign.output
    summary = json.loads(campaign.stdout)
    assert summary["by_status"]["DELIVERED"] == 3
    assert summary["waiting_in_review"] == 2
    assert summary["failed_by_reason"] == {"routing.unknown_provider": 1}
    table = CliRunner().invoke(cli, ["status", "--campaign", f"tl-{run}"], env=env)
    assert re.search(r"^IN_REVIEW\s+2$", table.stdout, re.MULTILINE), table.stdout
    assert "(+2 waiting in review)" in table.stdout
    unknown = CliRunner().invoke(cli, ["status", "no-such-request"], env=env)
    assert unknown.exit_code == 1
    assert "no record of request 'no-such-request'" in unknown.stderr


def test_a_follower_started_before_the_topics_exist_picks_them_up(
    line_settings: Settings,
) -> None:
    """A console may start before any worker created the line's topics."""
    request = _request("early", 1)

    async def scenario() -> RequestIndex:
        index = RequestIndex(Codecs.load())
        async with IndexFollower(line_settings, index, refresh_s=0.5) as follower:
            assert await follower.wait_caught_up(10)  # nothing to read: caught up at once
            assert len(index) == 0
            await submit_requests(line_settings, [request])  # creates the topics
            deadline = time.monotonic() + 30
            while request.request_id not in index and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return index

    index = asyncio.run(scenario())
    kinds = [e.kind for e in index.timeline(request.request_id)]
    assert kinds == [EventKind.REQUESTED]
