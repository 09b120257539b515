"""RegistryClient against the test registry: register, lookup, fetch, caching, auth, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

import schemas
from streams.codecs import Codecs, RegistryError, UnknownSchemaIdError
from streams.registry import (
    BearerAuth,
    RegistryClient,
    RegistryResolver,
    client_from_settings,
    make_auth,
)
from streams.registry.registration import register_schemas
from streams.settings import Settings
from streams.topics import TopicNames
from tests.support.registry_server import RegistryServer

CREDENTIALS = ("svc", "pa55:word")


@pytest.fixture(scope="module")
def server() -> Iterator[RegistryServer]:
    with RegistryServer(credentials=CREDENTIALS) as running:
        yield running


def client(server: RegistryServer) -> RegistryClient:
    return RegistryClient(server.url, auth=make_auth("basic", ":".join(CREDENTIALS)))


def test_register_is_idempotent_global_and_cached(server: RegistryServer) -> None:
    schema = schemas.load("Alert")

    async def go() -> tuple[int, int, int]:
        registry = client(server)
        try:
            first = await registry.register("a.alerts-value", schema)
            again = await registry.register("a.alerts-value", schema)
            other = await registry.register("b.alerts-value", schema)
            return first, again, other
        finally:
            await registry.aclose()

    posts = server.state.calls["POST /subjects/{subject}/versions"]
    first, again, other = asyncio.run(go())
    assert first == again == other  # ids are global: one schema, one id
    assert server.state.calls["POST /subjects/{subject}/versions"] == posts + 2  # 'again' cached


def test_schema_by_id_is_fetched_once_then_cached(server: RegistryServer) -> None:
    schema = schemas.load("ReviewItem")

    async def go() -> None:
        registry = client(server)
        try:
            schema_id = await registry.register("c.review-value", schema)
            fresh = client(server)
            try:
                gets = server.state.calls["GET /schemas/ids/{schema_id}"]
                assert await fresh.schema(schema_id) == schema
                assert await fresh.schema(schema_id) == schema
                assert server.state.calls["GET /schemas/ids/{schema_id}"] == gets + 1
                latest = await fresh.latest("c.review-value")
                assert (latest.schema_id, latest.version) == (schema_id, 1)
                found = await fresh.lookup("c.review-value", schema)
                assert found is not None
                assert found.schema_id == schema_id
                assert await fresh.lookup("c.review-value", schemas.load("Alert")) is None
            finally:
                await fresh.aclose()
        finally:
            await registry.aclose()

    asyncio.run(go())


def test_unknown_id_is_an_unknown_schema_id(server: RegistryServer) -> None:
    async def go() -> None:
        registry = client(server)
        try:
            await registry.schema(999_999)
        finally:
            await registry.aclose()

    with pytest.raises(UnknownSchemaIdError, match="no schema with id 999999") as caught:
        asyncio.run(go())
    assert caught.value.schema_id == 999_999


def test_wrong_credentials_fail_without_echoing_the_secret(
    server: RegistryServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        registry = RegistryClient(server.url, auth=make_auth("basic", "svc:not-the-password"))
        try:
            await registry.schema(1)
        finally:
            await registry.aclose()

    caplog.set_level(logging.DEBUG)
    with pytest.raises(RegistryError, match="answered 401") as caught:
        asyncio.run(go())
    assert "not-the-password" not in str(caught.value)
    assert "not-the-password" not in caplog.text


def test_unreachable_registry_is_a_registry_error() -> None:
    async def go() -> None:
        registry = RegistryClient("http://127.0.0.1:9", timeout=1.0)
        try:
            await registry.schema(1)
        finally:
            await registry.aclose()

    with pytest.raises(RegistryError, match="GET /schemas/ids/1 failed: ConnectError") as caught:
        asyncio.run(go())
    assert caught.value.code == "registry.unavailable"


def test_bearer_auth_sends_the_token_and_hides_it() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"schema": '{"type": "record", "name": "X", "fields": []}'})

    async def go() -> None:
        registry = RegistryClient(
            "http://registry.test",
            auth=make_auth("bearer", "tok-123"),
            transport=httpx.MockTransport(handler),
        )
        try:
            await registry.schema(3)
        finally:
            await registry.aclose()

    asyncio.run(go())
    assert seen == ["Bearer tok-123"]
    assert "tok-123" not in repr(BearerAuth("tok-123"))


def test_client_from_settings_takes_the_secret_by_name() -> None:
    assert client_from_settings(Settings()) is None
    settings = Settings(
        schema_registry_url="http://127.0.0.1:1",
        schema_registry_auth="registry",
        api_keys={"registry": SecretStr("u:p")},
    )
    built = client_from_settings(settings)
    assert built is not None
    assert built.base_url == "http://127.0.0.1:1"
    asyncio.run(built.aclose())
    with pytest.raises(ValueError, match="'missing', which is not in api_keys"):
        client_from_settings(settings.model_copy(update={"schema_registry_auth": "missing"}))
    with pytest.raises(ValueError, match="user:password"):
        make_auth("basic", "no-colon")


def test_registration_binds_ids_so_confluent_writers_can_encode(server: RegistryServer) -> None:
    codecs = Codecs.load(wire_formats={"completed": "confluent"})

    async def go(strategy: str) -> dict[str, int]:
        registry = client(server)
        try:
            return await register_schemas(codecs, registry, TopicNames.with_prefix("z"), strategy)
        finally:
            await registry.aclose()

    ids = asyncio.run(go("topic"))
    assert "z.completed-value" in ids
    assert "z.review.decisions-value" in ids
    assert codecs.completed.registry_id == ids["z.completed-value"]
    assert codecs.store.knows_id(ids["z.requests-value"])
    by_record = asyncio.run(go("record"))
    assert sorted(by_record) == sorted(f"io.assetline.v1.{n}" for n in schemas.FILES)


def test_resolver_fills_the_store(server: RegistryServer) -> None:
    async def go() -> None:
        registry = client(server)
        try:
            schema_id = await registry.register("r.alerts-value", schemas.load("Alert"))
            codecs = Codecs.load()
            resolver = RegistryResolver(client(server), codecs.store)
            assert not codecs.store.knows_id(schema_id)
            await resolver.ensure_known(schema_id)
            assert codecs.store.knows_id(schema_id)
            await resolver.client.aclose()
        finally:
            await registry.aclose()

    asyncio.run(go())
