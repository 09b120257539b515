"""`assetline demo`, `submit` and `tail` as a user runs them, against the session's broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streams.broker import free_port

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
        [sys.executable, "-m", "streams.cli", *args],
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
    demo = _assetline(env, "demo", "--timeout", "180")
    assert demo.returncode == 0, demo.stdout + demo.stderr
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
