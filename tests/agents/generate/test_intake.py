"""The generate stage's two intakes: ``.requests`` and ``.requests.urgent`` into one pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.generate.agent import STAGE, URGENT_AGENT, install
from schemas.records import Priority
from streams.app import create_line
from streams.settings import Settings


def test_generate_takes_both_request_topics_into_one_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        kafka_bootstrap="127.0.0.1:9",
        topic_prefix="p",
        blob_dir=tmp_path / "blobs",
        data_dir=tmp_path / "worker",
    )
    line = create_line(settings, [install])
    topics = {name: agent.channel.get_topic_name() for name, agent in line.app.agents.items()}
    assert topics == {STAGE: "p.requests", URGENT_AGENT: "p.requests.urgent"}
    assert list(line.pools) == [STAGE]  # one pool: a HIGH event from either goes first
    assert line.topics.requests_for(Priority.HIGH) is line.topics.requests_urgent
    assert line.topics.requests_for(Priority.NORMAL) is line.topics.requests
    assert line.topics.requests_for(Priority.LOW) is line.topics.requests
