"""assetline's registry client and Confluent codec against a real registry server.

The server is Apicurio Registry's Confluent-compatible API (``/apis/ccompat/v7``), run from
Maven Central without Docker (see :mod:`tests.support.apicurio`). Everything else in the suite
talks to the stand-in ``tests/support/registry_server.py``; these tests check that what we
assumed about the protocol holds for a server we did not write, and that confluent-kafka's own
serializer agrees with us byte for byte when both use that server.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import schemas
from schemas.records import GenerationRequest
from streams.codecs import (
    TOPIC_CONTRACTS,
    Codecs,
    RegistryError,
    SchemaStore,
    UnknownSchemaIdError,
    WireFormat,
)
from streams.registry import (
    RegistryClient,
    RegistryResolver,
    SubjectStrategy,
    record_fullname,
    subject_name,
)
from streams.registry.registration import register_schemas
from streams.topics import TopicNames
from tests.support.apicurio import ApicurioRegistry
from tests.support.assets import varied_request

pytestmark = pytest.mark.integration

T = TypeVar("T")


@pytest.fixture(scope="session")
def apicurio() -> Iterator[ApicurioRegistry]:
    """One Apicurio Registry (in-memory storage) for the session; fetched once into .cache/."""
    # Confluent matches a schema by its parsed form, so formatting and key order do not make a
    # new version; Apicurio only does that with canonical hashing on (off by default in 3.0.x).
    with ApicurioRegistry(properties={"apicurio.ccompat.use-canonical-hash": "true"}) as registry:
        yield registry


@pytest.fixture(scope="module")
def names() -> TopicNames:
    """Topic names of their own, so the session's registry can be shared."""
    return TopicNames.with_prefix(f"apicurio-{uuid.uuid4().hex[:8]}")


def registered_codecs(
    url: str, names: TopicNames, strategy: SubjectStrategy
) -> tuple[Codecs, dict[str, int]]:
    """Fresh codecs (Confluent framing on requests) registered like a worker's start-up."""
    store = SchemaStore()
    client = RegistryClient(url)
    codecs = Codecs.load(
        store, wire_formats={"requests": "confluent"}, resolver=RegistryResolver(client, store)
    )

    async def register() -> dict[str, int]:
        try:
            return await register_schemas(codecs, client, names, strategy)
        finally:
            await client.aclose()

    return codecs, asyncio.run(register())


@pytest.fixture(scope="module")
def by_topic(apicurio: ApicurioRegistry, names: TopicNames) -> tuple[Codecs, dict[str, int]]:
    return registered_codecs(apicurio.url, names, SubjectStrategy.TOPIC)


@pytest.fixture(scope="module")
def by_record(apicurio: ApicurioRegistry, names: TopicNames) -> tuple[Codecs, dict[str, int]]:
    return registered_codecs(apicurio.url, names, SubjectStrategy.RECORD)


def expected_subjects(codecs: Codecs, names: TopicNames, strategy: SubjectStrategy) -> set[str]:
    return {
        subject_name(strategy, getattr(names, topic), codecs.by_field(field).reader_schema)
        for topic, field in TOPIC_CONTRACTS.items()
    }


def make_request(i: int) -> GenerationRequest:
    return varied_request(i, "apicurio")


def run_with_client(url: str, work: Callable[[RegistryClient], Awaitable[T]]) -> T:
    """``await work(client)`` with a fresh (uncached) client, closed afterwards."""

    async def go() -> T:
        client = RegistryClient(url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


# --------------------------------------------------------------------------- registration


@pytest.mark.parametrize("strategy", list(SubjectStrategy))
def test_every_line_contract_is_registered_and_bound(
    apicurio: ApicurioRegistry,
    names: TopicNames,
    by_topic: tuple[Codecs, dict[str, int]],
    by_record: tuple[Codecs, dict[str, int]],
    strategy: SubjectStrategy,
) -> None:
    codecs, ids = by_topic if strategy is SubjectStrategy.TOPIC else by_record
    assert set(ids) == expected_subjects(codecs, names, strategy)
    if strategy is SubjectStrategy.RECORD:
        fields = set(TOPIC_CONTRACTS.values())
        assert set(ids) == {record_fullname(codecs.by_field(f).reader_schema) for f in fields}
    for topic, field in TOPIC_CONTRACTS.items():
        codec = codecs.by_field(field)
        subject = subject_name(strategy, getattr(names, topic), codec.reader_schema)
        assert codec.registry_id == ids[subject], subject
    # One id per distinct schema, as on Confluent: the three topics of ValidatedAsset share one.
    assert len(set(ids.values())) == len(set(TOPIC_CONTRACTS.values()))

    theirs = SchemaRegistryClient({"url": apicurio.url})
    assert set(ids) <= set(theirs.get_subjects())


def test_ids_are_global_across_subjects_and_registration_is_idempotent(
    apicurio: ApicurioRegistry,
    names: TopicNames,
    by_topic: tuple[Codecs, dict[str, int]],
    by_record: tuple[Codecs, dict[str, int]],
) -> None:
    topic_codecs, _ = by_topic
    record_codecs, _ = by_record
    for field in set(TOPIC_CONTRACTS.values()):
        assert topic_codecs.by_field(field).registry_id is not None
        assert (
            topic_codecs.by_field(field).registry_id == record_codecs.by_field(field).registry_id
        ), field
    again, again_ids = registered_codecs(apicurio.url, names, SubjectStrategy.TOPIC)
    assert again_ids == by_topic[1]
    assert again.request.registry_id == topic_codecs.request.registry_id

    async def latest_versions(client: RegistryClient) -> set[int]:
        return {(await client.latest(subject)).version for subject in again_ids}

    assert run_with_client(apicurio.url, latest_versions) == {1}  # no new versions


@pytest.mark.parametrize("strategy", list(SubjectStrategy))
def test_lookup_latest_and_schema_by_id(
    apicurio: ApicurioRegistry,
    names: TopicNames,
    by_topic: tuple[Codecs, dict[str, int]],
    by_record: tuple[Codecs, dict[str, int]],
    strategy: SubjectStrategy,
) -> None:
    codecs, ids = by_topic if strategy is SubjectStrategy.TOPIC else by_record
    schema_by_subject = {
        subject_name(strategy, getattr(names, topic), codecs.by_field(f).reader_schema): (
            codecs.by_field(f).reader_schema
        )
        for topic, f in TOPIC_CONTRACTS.items()
    }

    async def check(client: RegistryClient) -> None:
        for subject, schema in schema_by_subject.items():
            found = await client.lookup(subject, schema)
            assert found is not None, subject
            assert (found.subject, found.schema_id, found.version) == (subject, ids[subject], 1)
            assert found.schema == schema
            latest = await client.latest(subject)
            assert (latest.schema_id, latest.version, latest.schema) == (ids[subject], 1, schema)
        for subject, schema in schema_by_subject.items():
            fresh = RegistryClient(apicurio.url)  # nothing cached: really GET /schemas/ids/{id}
            try:
                assert await fresh.schema(ids[subject]) == schema
            finally:
                await fresh.aclose()

    run_with_client(apicurio.url, check)


def test_a_differently_formatted_schema_is_the_same_schema(
    apicurio: ApicurioRegistry, names: TopicNames, by_topic: tuple[Codecs, dict[str, int]]
) -> None:
    """Other writers (Java's Schema.toString(), hand-written .avsc) spell the schema their way."""
    codecs, ids = by_topic
    schema = codecs.request.reader_schema
    reordered = dict(reversed(list(schema.items())))
    assert json.dumps(reordered) != json.dumps(schema)
    subject = subject_name(SubjectStrategy.TOPIC, names.requests, schema)

    async def check(client: RegistryClient) -> tuple[int | None, int, int]:
        found = await client.lookup(subject, reordered)
        registered = await client.register(subject, reordered)
        return (
            (found.schema_id if found else None),
            registered,
            (await client.latest(subject)).version,
        )

    assert run_with_client(apicurio.url, check) == (ids[subject], ids[subject], 1)


def test_unknown_subjects_schemas_and_ids_are_reported_as_such(
    apicurio: ApicurioRegistry, by_topic: tuple[Codecs, dict[str, int]]
) -> None:
    codecs, ids = by_topic
    request_schema = codecs.request.reader_schema
    unused_id = max(ids.values()) + 10_000
    a_subject = next(iter(ids))

    async def check(client: RegistryClient) -> None:
        assert await client.lookup(f"missing-{uuid.uuid4().hex}", request_schema) is None
        # A known subject, but not with this schema (Confluent: 40403; must not be an error).
        other = {**request_schema, "name": "NotRegistered", "namespace": "apicurio.test"}
        assert await client.lookup(a_subject, other) is None
        with pytest.raises(UnknownSchemaIdError) as unknown:
            await client.schema(unused_id)
        assert unknown.value.schema_id == unused_id
        with pytest.raises(RegistryError, match="no subject"):
            await client.latest(f"missing-{uuid.uuid4().hex}")

    run_with_client(apicurio.url, check)


# --------------------------------------------------------------------------- codec


def test_confluent_framed_request_round_trips_through_the_registry(
    apicurio: ApicurioRegistry, by_topic: tuple[Codecs, dict[str, int]]
) -> None:
    """Encoded by a registered writer; decoded by a fresh codec that only knows the registry."""
    writer, _ = by_topic
    assert writer.request.wire_format is WireFormat.CONFLUENT
    request = make_request(1)
    data = writer.request.encode(request)
    assert data[:1] == b"\x00"
    schema_id = int.from_bytes(data[1:5], "big")
    assert schema_id == writer.request.registry_id

    store = SchemaStore()
    client = RegistryClient(apicurio.url)
    reader = Codecs.load(store, resolver=RegistryResolver(client, store))
    assert not store.knows_id(schema_id)
    with pytest.raises(UnknownSchemaIdError):
        reader.request.decode(data)  # before resolving: the id means nothing here

    async def resolve() -> None:
        try:
            assert reader.resolver is not None
            await reader.resolver.ensure_known(schema_id)
        finally:
            await client.aclose()

    asyncio.run(resolve())
    assert store.knows_id(schema_id)
    assert reader.request.decode(data) == request


def ctx(names: TopicNames) -> SerializationContext:
    return SerializationContext(names.requests, MessageField.VALUE)


def their_serializer(apicurio: ApicurioRegistry) -> AvroSerializer:
    """Lookup only: their serializer must find what *we* registered, not register its own."""
    serializer: AvroSerializer = AvroSerializer(
        SchemaRegistryClient({"url": apicurio.url}),
        json.dumps(schemas.load("GenerationRequest")),
        conf={"auto.register.schemas": False},
    )
    return serializer


@pytest.mark.parametrize("i", range(3))
def test_our_bytes_equal_confluent_kafka_serializer_bytes(
    apicurio: ApicurioRegistry,
    names: TopicNames,
    by_topic: tuple[Codecs, dict[str, int]],
    i: int,
) -> None:
    codecs, _ = by_topic
    request = make_request(i)
    their_bytes = their_serializer(apicurio)(request.model_dump(), ctx(names))
    assert their_bytes is not None
    assert int.from_bytes(their_bytes[1:5], "big") == codecs.request.registry_id
    assert codecs.request.encode(request) == their_bytes


def test_confluent_kafka_deserializer_reads_our_bytes(
    apicurio: ApicurioRegistry, names: TopicNames, by_topic: tuple[Codecs, dict[str, int]]
) -> None:
    codecs, _ = by_topic
    request = make_request(4)
    theirs = SchemaRegistryClient({"url": apicurio.url})  # fresh: fetches the id from Apicurio
    decoded = AvroDeserializer(theirs)(codecs.request.encode(request), ctx(names))
    assert GenerationRequest.model_validate(decoded) == request


def test_we_read_confluent_kafka_serializer_bytes_through_the_registry(
    apicurio: ApicurioRegistry, names: TopicNames, by_topic: tuple[Codecs, dict[str, int]]
) -> None:
    request = make_request(5)
    their_bytes = their_serializer(apicurio)(request.model_dump(), ctx(names))
    assert their_bytes is not None
    schema_id = int.from_bytes(their_bytes[1:5], "big")
    store = SchemaStore()
    client = RegistryClient(apicurio.url)
    codecs = Codecs.load(store, resolver=RegistryResolver(client, store))

    async def resolve() -> None:
        try:
            assert codecs.resolver is not None
            await codecs.resolver.ensure_known(schema_id)
        finally:
            await client.aclose()

    asyncio.run(resolve())
    assert codecs.request.decode(their_bytes) == request
