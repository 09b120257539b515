"""Confluent framing on a real broker: confluent-kafka producers in, dead letters for GUIDs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import SecretStr

import schemas
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, GenerationRequest
from streams.codecs import Codecs, SchemaStore
from streams.dead_letters import header_map
from streams.registry import RegistryClient, RegistryResolver, make_auth
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import read_topic
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.integration

CREDENTIALS = ("line", "registry-pass")


@pytest.fixture
def registry() -> Iterator[RegistryServer]:
    with RegistryServer(credentials=CREDENTIALS) as server:
        yield server


def request(run: str, i: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"{run}-{i}",
        idempotency_key=f"{run}-{i}",
        tenant="acme",
        campaign_id="registry",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${persona}",
        variables={"persona": "hiker"},
    )


def test_confluent_framed_requests_are_delivered_and_bad_ids_dead_lettered(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    registry: RegistryServer,
) -> None:
    settings = line_settings.model_copy(
        update={
            "schema_registry_url": registry.url,
            "schema_registry_auth": "registry",
            "api_keys": {"registry": SecretStr(":".join(CREDENTIALS))},
            "wire_format_by_topic": {"completed": "confluent"},
        }
    )
    names = TopicNames.with_prefix(settings.topic_prefix)
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))

    # A producer that only knows Confluent's tooling.
    theirs = SchemaRegistryClient(
        {"url": registry.url, "basic.auth.user.info": ":".join(CREDENTIALS)}
    )
    serialize = AvroSerializer(theirs, json.dumps(schemas.load("GenerationRequest")))
    ctx = SerializationContext(names.requests, MessageField.VALUE)
    run = uuid.uuid4().hex[:8]
    good = [request(run, i) for i in range(3)]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for r in good:
        producer.produce(names.requests, key=r.request_id, value=serialize(r.model_dump(), ctx))
    body = serialize(request(run, 99).model_dump(), ctx)[5:]
    producer.produce(names.requests, key=b"guid", value=b"\x01" + uuid.uuid4().bytes + body)
    producer.produce(names.requests, key=b"unknown-id", value=b"\x00\x00\x0f\x42\x3f" + body)
    assert producer.flush(10) == 0

    worker = start_worker(settings)

    completed = asyncio.run(
        read_topic(settings, names.completed, min_messages=len(good), timeout=90)
    )
    assert len(completed) >= len(good), worker.log_tail()
    # .completed is configured for Confluent framing: ids resolve through the registry.
    store = SchemaStore()
    client = RegistryClient(registry.url, auth=make_auth("basic", ":".join(CREDENTIALS)))
    codecs = Codecs.load(store, resolver=RegistryResolver(client, store))

    async def decode_all() -> list[tuple[str, CompletionStatus]]:
        out = []
        try:
            for message in completed:
                value = message.value  # type: ignore[attr-defined]
                assert value[:1] == b"\x00"
                assert codecs.resolver is not None
                await codecs.resolver.ensure_known(int.from_bytes(value[1:5], "big"))
                done = codecs.completed.decode(value)
                out.append((done.request_id, done.status))
        finally:
            await client.aclose()
        return out

    statuses = dict(asyncio.run(decode_all()))
    assert statuses == {r.request_id: CompletionStatus.DELIVERED for r in good}

    deadline = time.monotonic() + 30
    codes: dict[bytes, str] = {}
    while time.monotonic() < deadline and len(codes) < 2:
        letters = asyncio.run(read_topic(settings, names.deadletter, min_messages=2, timeout=10))
        codes = {
            m.key: header_map(m.headers)["assetline.dlq.error.code"]  # type: ignore[attr-defined]
            for m in letters
        }
    assert codes == {
        b"guid": "codec.unsupported_framing",
        b"unknown-id": "codec.unknown_schema_id",
    }, worker.log_tail()
