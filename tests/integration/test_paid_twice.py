"""A finished generation is not paid for again when a crash brings its request round.

The worker is ``kill -9``'d after the provider answered and the generation was recorded, but
before the offset was committed (a long commit interval). After the restart the requests are
consumed again: the provider is not called again, the ``.raw`` records say so in a header, and
each request completes exactly once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.generate.finished import REUSED_HEADER
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

CHAT = "/chat/completions"


class Calls:
    """The provider's log of request ids (each prompt names its request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ids: list[str] = []

    def handler(self, body: Any) -> Reply:
        text = body["messages"][-1]["content"]
        rid = text.split("id=", 1)[1].split()[0]
        with self._lock:
            self.ids.append(rid)
        return Reply(json=openai_chat_response(f"Made for {rid}.", model=body["model"]))


@pytest.fixture
def provider() -> Iterator[tuple[ProviderServer, Calls]]:
    calls = Calls()
    with provider_server() as server:
        server.handle("POST", CHAT, calls.handler)
        yield server, calls


def routing(path: Path, base_url: str) -> Path:
    path.write_text(
        f"""providers:
  local: {{type: openai, base_url: "{base_url}"}}
aliases:
  copy:
    chain:
      - {{provider: local, model: m, version: m-1, timeout_s: 30, max_retries: 0,
         price: {{input_per_1k: 0.001, output_per_1k: 0.002}}}}
default_alias: copy
"""
    )
    return path


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_finished_generation_is_reused_after_kill_9_and_completes_once(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    provider: tuple[ProviderServer, Calls],
    tmp_path: Path,
) -> None:
    server, calls = provider
    settings = line_settings.model_copy(
        update={
            "routing_file": routing(tmp_path / "routing.yaml", server.url),
            # No offset is committed before the kill: every request comes round again.
            "commit_interval_s": 600.0,
            "stages": ("generate",),
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"pt-{run}-{i}",
            idempotency_key=f"pt-{run}-{i}",
            tenant="acme",
            campaign_id="paid-twice",
            kind=AssetKind.TEXT,
            prompt_template=f"Copy for ${{p}} id=pt-{run}-{i} thanks",
            variables={"p": "runners"},
            constraints=Constraints(max_chars=200),
        )
        for i in range(6)
    ]
    ids = [r.request_id for r in requests]
    names = TopicNames.with_prefix(settings.topic_prefix)
    asyncio.run(submit_requests(settings, requests))

    def recorded() -> set[str]:
        return {
            (m.key or b"").decode().rsplit("|", 1)[0]
            for m in asyncio.run(read_to_end(settings.kafka_bootstrap, names.generations))
        }

    def emitted() -> set[str]:
        return {
            (m.key or b"").decode()
            for m in asyncio.run(read_to_end(settings.kafka_bootstrap, names.raw))
        }

    first = start_worker(settings)
    wait_for(lambda: recorded() >= set(ids), 90, "every generation recorded")
    # The raw record is sent after the generation record is written: a kill between the two
    # is a different case (the next owner emits it, reused), so wait for both to be on Kafka.
    wait_for(lambda: emitted() >= set(ids), 30, "every raw record emitted")
    first.kill()  # the provider answered, the record is acknowledged, no offset committed
    assert sorted(calls.ids) == sorted(ids)

    # The second worker runs the whole line, so the requests also complete.
    whole_line = {
        "stages": line_settings.stages,
        "commit_interval_s": line_settings.commit_interval_s,
    }
    second = start_worker(settings.model_copy(update=whole_line))
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert set(completions) == set(ids), second.log_tail()
    time.sleep(3.0)  # a double would come late
    codec = Codecs.load().completed
    done = [
        codec.decode(m.value or b"")
        for m in asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed))
    ]
    assert Counter(c.request_id for c in done) == Counter(ids)
    assert {c.status for c in done} == {CompletionStatus.DELIVERED}

    assert Counter(calls.ids) == Counter(ids), "a finished call was made again"
    raw = asyncio.run(read_to_end(settings.kafka_bootstrap, names.raw))
    fresh: Counter[str] = Counter()
    reused: set[str] = set()
    for message in raw:
        rid = (message.key or b"").decode()
        if (REUSED_HEADER, b"true") in list(message.headers or ()):
            reused.add(rid)
        else:
            fresh[rid] += 1
    assert fresh == Counter(ids), "each request generated once, before the kill"
    assert reused == set(ids), "every request came round again and was answered from its record"
