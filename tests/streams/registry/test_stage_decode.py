"""StageIO.decode: an unknown Confluent id is fetched once, then decoded; else dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

import schemas
from schemas.records import AssetKind, GenerationRequest
from streams.codecs import Codecs, confluent_prefix
from streams.dead_letters import header_map
from streams.metrics import StageMetrics
from streams.settings import Settings
from streams.stage_io import StageIO

REQUEST = GenerationRequest(
    request_id="r-1",
    idempotency_key="k-1",
    tenant="acme",
    campaign_id="c",
    kind=AssetKind.TEXT,
    prompt_template="Hi ${who}",
    variables={"who": "you"},
)


class Topic:
    """Records sends; like Faust, returns a future of the broker's acknowledgement."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> asyncio.Future[None]:
        self.sent.append(kwargs)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery


class FakeResolver:
    """Knows some ids, like a registry would; records what was asked."""

    def __init__(self, codecs: Codecs, known: dict[int, str]) -> None:
        self.codecs, self.known, self.asked = codecs, known, list[int]()

    async def ensure_known(self, schema_id: int) -> None:
        self.asked.append(schema_id)
        if schema_id in self.known:
            self.codecs.store.register_id(schema_id, schemas.load(self.known[schema_id]))


def make_io(resolver: bool) -> tuple[StageIO, Codecs, Topic, FakeResolver]:
    plain = Codecs.load()
    fake = FakeResolver(plain, {7: "GenerationRequest"})
    codecs = Codecs.load(plain.store, resolver=fake if resolver else None)
    deadletter = Topic()
    line = SimpleNamespace(
        settings=Settings(),
        app=SimpleNamespace(consumer=SimpleNamespace()),  # no hold/release: nothing held here
        metrics=StageMetrics.build(CollectorRegistry()),
        topics=SimpleNamespace(deadletter=deadletter),
        codecs=codecs,
    )
    return StageIO(line, "generate"), codecs, deadletter, fake  # type: ignore[arg-type]


def event(value: bytes) -> SimpleNamespace:
    message = SimpleNamespace(topic="t.requests", partition=0, offset=3, key=b"k", value=value)
    message.headers = [("trace", b"t")]
    return SimpleNamespace(message=message)


def body(codecs: Codecs) -> bytes:
    return codecs.request.encode(REQUEST)[10:]


def test_unknown_id_is_fetched_then_decoded_and_cached() -> None:
    io, codecs, deadletter, fake = make_io(resolver=True)
    data = confluent_prefix(7) + body(codecs)
    assert asyncio.run(io.decode(codecs.request, event(data))) == REQUEST
    assert asyncio.run(io.decode(codecs.request, event(data))) == REQUEST
    assert fake.asked == [7]  # the second message decoded from the cache
    assert deadletter.sent == []


def test_id_the_registry_does_not_know_is_dead_lettered() -> None:
    io, codecs, deadletter, fake = make_io(resolver=True)
    assert asyncio.run(io.decode(codecs.request, event(confluent_prefix(8) + body(codecs)))) is None
    assert fake.asked == [8]
    headers = header_map(deadletter.sent[0]["headers"])
    assert headers["assetline.dlq.error.code"] == "codec.unknown_schema_id"
    assert "id 8 " in headers["assetline.dlq.error.reason"]


def test_without_a_registry_a_confluent_id_is_dead_lettered() -> None:
    io, codecs, deadletter, _ = make_io(resolver=False)
    assert asyncio.run(io.decode(codecs.request, event(confluent_prefix(7) + body(codecs)))) is None
    headers = header_map(deadletter.sent[0]["headers"])
    assert headers["assetline.dlq.error.code"] == "codec.unknown_schema_id"
    assert headers["trace"] == "t"


def test_guid_framing_is_dead_lettered_with_its_code() -> None:
    io, codecs, deadletter, fake = make_io(resolver=True)
    data = b"\x01" + uuid.uuid4().bytes + body(codecs)
    assert asyncio.run(io.decode(codecs.request, event(data))) is None
    assert fake.asked == []
    headers = header_map(deadletter.sent[0]["headers"])
    assert headers["assetline.dlq.error.code"] == "codec.unsupported_framing"
    assert "magic byte 0" in headers["assetline.dlq.error.reason"]
