"""Byte compatibility with confluent-kafka's own AvroSerializer/AvroDeserializer.

Both sides talk to the same (test) registry, so the same schema gets the same global id; then
our Confluent-framed bytes must equal theirs, and each side must decode the other's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import schemas
from schemas.records import GenerationRequest
from streams.codecs import Codecs, SchemaStore, WireFormat
from streams.registry import RegistryClient, RegistryResolver, make_auth
from streams.registry.registration import register_schemas
from streams.topics import TopicNames
from tests.support.assets import varied_request
from tests.support.registry_server import RegistryServer

TOPIC = "compat.requests"
CREDENTIALS = ("svc", "s3cret")


def make_request(i: int) -> GenerationRequest:
    return varied_request(i, "r")


@pytest.fixture(scope="module")
def server() -> Iterator[RegistryServer]:
    with RegistryServer(credentials=CREDENTIALS) as running:
        yield running


@pytest.fixture(scope="module")
def theirs(server: RegistryServer) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": server.url, "basic.auth.user.info": ":".join(CREDENTIALS)})


@pytest.fixture(scope="module")
def ours(server: RegistryServer) -> Codecs:
    """Codecs writing Confluent framing on the requests topic, registered like a worker does."""
    store = SchemaStore()
    client = RegistryClient(server.url, auth=make_auth("basic", ":".join(CREDENTIALS)))
    codecs = Codecs.load(
        store,
        wire_formats={"requests": "confluent"},
        resolver=RegistryResolver(client, store),
    )

    async def register() -> None:
        try:
            await register_schemas(codecs, client, TopicNames.with_prefix("compat"), "topic")
        finally:
            await client.aclose()

    asyncio.run(register())
    assert codecs.request.wire_format is WireFormat.CONFLUENT
    return codecs


def ctx() -> SerializationContext:
    return SerializationContext(TOPIC, MessageField.VALUE)


def serializer(theirs: SchemaRegistryClient) -> AvroSerializer:
    schema_str = json.dumps(schemas.load("GenerationRequest"))
    return AvroSerializer(theirs, schema_str, conf={"auto.register.schemas": True})


def as_avro_dict(request: GenerationRequest) -> dict[str, Any]:
    return request.model_dump()


@pytest.mark.parametrize("i", range(4))
def test_our_bytes_equal_confluent_serializer_bytes(
    theirs: SchemaRegistryClient, ours: Codecs, i: int
) -> None:
    request = make_request(i)
    their_bytes = serializer(theirs)(as_avro_dict(request), ctx())
    our_bytes = ours.request.encode(request)
    assert their_bytes[:1] == b"\x00"
    assert int.from_bytes(their_bytes[1:5], "big") == ours.request.registry_id
    assert our_bytes == their_bytes


def test_confluent_deserializer_reads_our_bytes(theirs: SchemaRegistryClient, ours: Codecs) -> None:
    request = make_request(5)
    decoded = AvroDeserializer(theirs)(ours.request.encode(request), ctx())
    assert GenerationRequest.model_validate(decoded) == request


def test_we_read_confluent_serializer_bytes_through_the_registry(
    theirs: SchemaRegistryClient, server: RegistryServer
) -> None:
    """A fresh process (empty store) resolves the id via the registry, then decodes."""
    request = make_request(6)
    their_bytes = serializer(theirs)(as_avro_dict(request), ctx())
    schema_id = int.from_bytes(their_bytes[1:5], "big")
    store = SchemaStore()
    client = RegistryClient(server.url, auth=make_auth("basic", ":".join(CREDENTIALS)))
    codecs = Codecs.load(store, resolver=RegistryResolver(client, store))
    assert not store.knows_id(schema_id)

    async def fetch() -> None:
        try:
            assert codecs.resolver is not None
            await codecs.resolver.ensure_known(schema_id)
        finally:
            await client.aclose()

    asyncio.run(fetch())
    assert codecs.request.decode(their_bytes) == request
