"""examples/producers/python_producer.py exits 0 only when every request was DELIVERED."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from assetline.client import LineClient
from schemas.records import AssetCompleted, CompletionStatus
from streams.codecs import Codecs
from streams.settings import Settings, settings_env
from streams.topics import TopicNames, ensure_topics, line_topic_specs

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "producers" / "python_producer.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("python_producer", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_failed_completions_make_the_example_exit_non_zero(line_settings: Settings) -> None:
    """Every request already has a FAILED completion (ids are derived from the intent, so the
    line would keep those): the script used to print them and exit 0."""
    requests = _script().build_requests()
    codecs = Codecs.load()
    topic = TopicNames.with_prefix(line_settings.topic_prefix).completed

    async def complete_as_failed() -> None:
        await ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings))
        async with LineClient(line_settings) as client:
            for r in requests:
                done = AssetCompleted(
                    request_id=r.request_id,
                    idempotency_key=r.idempotency_key,
                    tenant=r.tenant,
                    campaign_id=r.campaign_id,
                    kind=r.kind,
                    status=CompletionStatus.FAILED,
                    reasons=["generate.error: the provider is down"],
                )
                await client.send_raw(topic, r.request_id.encode(), codecs.completed.encode(done))

    asyncio.run(complete_as_failed())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLINE_")}
    env.update(settings_env(line_settings))
    env.pop("KAFKA_BOOTSTRAP", None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count(" FAILED ") == len(requests), done.stdout
