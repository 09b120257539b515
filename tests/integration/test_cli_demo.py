"""`assetline demo`, `submit` and `tail` as a user runs them, against the session's broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from assetline.cli import cli
from assetline.client import LineClient
from assetline.dev.broker import free_port
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings, settings_env
from streams.topics import TopicNames, ensure_topics, line_topic_specs

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _env(kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    uid = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLINE_")}
    env.update(
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        ASSETLINE_APP_ID=f"demo-{uid}",
        ASSETLINE_TOPIC_PREFIX=f"demo-{uid}",
        ASSETLINE_TOPIC_PARTITIONS="3",
        ASSETLINE_DELIVERY_DIR=str(tmp_path / "delivery"),
        ASSETLINE_BLOB_DIR=str(tmp_path / "blobs"),
        ASSETLINE_DATA_DIR=str(tmp_path / "worker"),
        ASSETLINE_WEB_PORT=str(free_port()),
        ASSETLINE_SESSION_TIMEOUT_S="6",
    )
    return env


def _assetline(
    env: dict[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assetline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_demo_delivers_the_whole_campaign_and_tail_shows_it(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = _env(kafka_bootstrap, tmp_path)
    # A user's own profiles folder (without the demo's profile) used to deliver 0 of 12, exit 0.
    demo_env = {k: v for k, v in env.items() if k != "KAFKA_BOOTSTRAP"}
    demo_env["ASSETLINE_PROFILES_DIR"] = str(ROOT / "examples" / "profiles")
    demo = _assetline(demo_env, "demo", "--bootstrap", kafka_bootstrap, "--timeout", "180")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "using the demo's own brand profile" in demo.stdout
    assert "NotLeaderForPartition" not in demo.stdout + demo.stderr  # fresh topics' elections
    rows = [line for line in demo.stdout.splitlines() if line.startswith("demo-")]
    assert len(rows) == 12, demo.stdout
    assert all(" DELIVERED " in row for row in rows)
    assert "12/12 delivered" in demo.stdout
    files = sorted((tmp_path / "delivery" / "acme" / "spring-launch").iterdir())
    assets = [f for f in files if f.suffix in (".png", ".txt")]
    sidecars = [f for f in files if f.name.endswith(".txt.json")]
    assert (len(assets), len(sidecars), len(files)) == (12, 6, 18)  # copy gets a sidecar
    assert all(b"trainedAlgorithmicMedia" in f.read_bytes() for f in assets if f.suffix == ".png")

    tail = _assetline(env, "tail", "completed", "--limit", "12", "--timeout", "10", timeout=60)
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(events) == 12
    assert {e["value"]["status"] for e in events} == {"DELIVERED"}
    assert {e["value"]["tenant"] for e in events} == {"acme"}


def test_submit_from_flags_prints_ids(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = _env(kafka_bootstrap, tmp_path)
    assert _assetline(env, "topics", timeout=60).returncode == 0
    submitted = _assetline(env, "submit", "--kind", "TEXT", "--var", "persona=x", "--count", "3")
    assert submitted.returncode == 0, submitted.stderr
    ids = submitted.stdout.split()
    assert len(ids) == 3
    tail = _assetline(env, "tail", "requests", "--limit", "3", "--timeout", "10", timeout=60)
    seen = [json.loads(line)["value"]["request_id"] for line in tail.stdout.splitlines()]
    assert sorted(seen) == sorted(ids)


def _cli(settings: Settings, *args: str) -> Result:
    """The CLI in-process, configured only by the environment, as a user runs it."""
    env = {**settings_env(settings), "KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    return CliRunner().invoke(cli, list(args), env=env)


def test_tail_of_a_mistyped_topic_fails_at_once_naming_the_closest(
    line_settings: Settings,
) -> None:
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    started = time.monotonic()
    result = _cli(line_settings, "tail", "complete")
    assert time.monotonic() - started < 10  # it took 40 s and printed 400 lines
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: no topic 'complete'; did you mean 'completed'?")
    assert "deadletter" in lines[0]


def test_tail_and_dlq_list_show_a_dead_letters_key(line_settings: Settings) -> None:
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    names = TopicNames.with_prefix(line_settings.topic_prefix)

    async def park() -> None:
        async with LineClient(line_settings) as client:
            await client.send_raw(names.deadletter, b"the-request-7", b"not avro")

    asyncio.run(park())
    tail = _cli(line_settings, "tail", "deadletter", "--limit", "1", "--timeout", "10")
    assert tail.exit_code == 0, tail.output
    assert json.loads(tail.stdout.splitlines()[0])["key"] == "the-request-7"
    listed = _cli(line_settings, "dlq", "list")
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()[:2]
    assert "key" in header.split()
    assert "the-request-7" in row


def test_submit_flags_and_wait_exit_codes(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    # No worker yet: nothing completes, so --wait runs out of time: exit 3.
    lonely = _cli(line_settings, "submit", "--wait", "2")
    assert lonely.exit_code == 3, lonely.output
    assert "got no completion in time" in lonely.stderr

    flags = _cli(
        line_settings,
        "submit",
        "--brand-profile",
        "no-such-brand",
        "--alias",
        "copy-default",
        "--callback-url",
        "https://example.com/hook",
    )
    assert flags.exit_code == 0, flags.output
    (request_id,) = flags.stdout.split()
    requests = _cli(line_settings, "tail", "requests", "--timeout", "5")
    sent = [json.loads(line)["value"] for line in requests.stdout.splitlines()]
    (request,) = [r for r in sent if r["request_id"] == request_id]
    assert request["brand_profile_id"] == "no-such-brand"
    assert request["model"]["alias"] == "copy-default"
    assert request["callback_url"] == "https://example.com/hook"

    worker = start_worker(line_settings)
    delivered = _cli(line_settings, "submit", "--wait", "90")
    assert delivered.exit_code == 0, delivered.output + worker.log_tail()
    assert " DELIVERED file://" in delivered.stdout

    # The newcomer's case: every request FAILED (policy.unknown_profile) used to exit 0.
    failed = _cli(line_settings, "submit", "--brand-profile", "no-such-brand", "--wait", "90")
    assert failed.exit_code == 4, failed.output + worker.log_tail()
    assert " FAILED " in failed.stdout
    assert "0 of 1 delivered; 1 FAILED" in failed.stderr
    assert "policy.unknown_profile" in failed.stderr
