"""Completion events on a real broker carry CloudEvents headers a plain SDK can parse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from agents.deliver.cloudevents import EVENT_TYPE
from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import mixed_requests, read_topic, submit_requests

pytestmark = pytest.mark.integration


def test_completed_messages_are_cloudevents_in_binary_mode(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    requests = [e.request for e in mixed_requests(12)]

    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    done = asyncio.run(await_completions(line_settings, ids, timeout=90))
    assert set(done) == set(ids), worker.log_tail()

    topic = TopicNames.with_prefix(line_settings.topic_prefix).completed
    messages = asyncio.run(read_topic(line_settings, topic, min_messages=len(ids), timeout=10))
    codec = Codecs.load().completed
    seen = set()
    for message in messages:
        headers = {k: bytes(v) for k, v in message.headers}  # type: ignore[attr-defined]
        event = from_binary_event(
            KafkaMessage(headers=headers, key=message.key, value=message.value)  # type: ignore[attr-defined]
        )
        completion = codec.decode(event.get_data())
        assert event.get_type() == EVENT_TYPE
        assert event.get_id() == f"{completion.request_id}/{completion.attempt}"
        assert event.get_subject() == completion.request_id
        assert event.get_extension("partitionkey") == completion.request_id
        assert event.get_time() == completion.completed_at
        seen.add(completion.request_id)
    assert seen == set(ids)
