"""The line over a secured Kafka: SASL_SSL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER), mutual TLS.

The module starts its own real Apache Kafka (:mod:`tests.support.secure_kafka`): certificates
made here with ``cryptography``, a PEM keystore on the broker, SCRAM users created by Kafka's
storage tool at format time, OAUTHBEARER tokens from a local OAuth 2 endpoint. Clients are
given only the secured listener's address; the broker then advertises that listener alone to
them, so nothing falls back to its PLAINTEXT port.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from assetline.client import LineClient, await_completions
from assetline.dev.broker import LocalBroker
from assetline.dev.child_worker import WorkerProcess
from streams.kafka import open_topic_reader, topic_exists
from streams.kafka_security import KafkaUnreachable
from streams.settings import Settings, settings_env
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import mixed_requests
from tests.support.brokers import line_settings_for, running
from tests.support.secure_kafka import (
    CLIENT_KEY_PASSWORD,
    PASSWORD,
    USER,
    Pki,
    TokenServer,
    make_pki,
    secure_broker,
)

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
WRONG_PASSWORD = "not-alices-password-0"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, Pki]]:
    """A broker with a SASL_SSL listener (SECURE) and an mTLS one (MTLS), for the module."""
    root = tmp_path_factory.mktemp("secured")
    pki = make_pki(root / "pki")
    with running(secure_broker(root / "kafka", pki)) as broker:
        yield broker, pki


@pytest.fixture(scope="module")
def tokens() -> Iterator[TokenServer]:
    server = TokenServer().start()
    try:
        yield server
    finally:
        server.stop()


def _settings(
    secured: tuple[LocalBroker, Pki],
    tmp_path: Path,
    *,
    mechanism: str = "SCRAM-SHA-512",
    tokens: TokenServer | None = None,
) -> Settings:
    broker, pki = secured
    oauth: dict[str, Any] = {}
    if mechanism == "OAUTHBEARER":
        assert tokens is not None
        oauth = {"kafka_sasl_oauth_token_url": tokens.url, "kafka_sasl_oauth_scope": "kafka"}
    return line_settings_for(
        broker.bootstrap_of("SECURE"),
        tmp_path,
        prefix="sec",
        **oauth,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
        kafka_ssl_cafile=pki.ca,
    )


async def _round_trip(settings: Settings, value: bytes) -> tuple[list[str], list[Any]]:
    """Create the line's topics, send ``value`` to the requests topic, read it back.

    (topics created by this call, values read from the requests topic)
    """
    names = TopicNames.with_prefix(settings.topic_prefix)
    created = await ensure_topics(settings, line_topic_specs(settings))
    async with LineClient(settings) as client:
        await client.send_raw(names.requests, b"k", value)
    reader = await open_topic_reader(settings, names.requests)
    try:
        batch = await reader.getmany(timeout_ms=10_000)
    finally:
        await reader.stop()
    return created, [r.value for records in batch.values() for r in records]


def _assetline(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSETLINE_", "KAFKA_"))}
    env.update(settings_env(settings))
    return subprocess.run(
        [sys.executable, "-m", "assetline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test here instead of blocking it
        check=False,
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "OAUTHBEARER"])
def test_the_whole_line_runs_over_sasl_ssl(
    secured: tuple[LocalBroker, Pki],
    tokens: TokenServer,
    tmp_path: Path,
    start_worker: StartWorker,
    mechanism: str,
) -> None:
    """SDK in, worker (every stage), completions out; then the CLI submits and waits."""
    settings = _settings(secured, tmp_path, mechanism=mechanism, tokens=tokens)
    expected = mixed_requests(30)
    requests = [e.request for e in expected]

    async def submit() -> None:
        await ensure_topics(settings, line_topic_specs(settings))
        async with LineClient(settings) as client:
            await client.submit(requests)

    asyncio.run(submit())
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=150))
    missing = [i for i in ids if i not in completions]
    assert not missing, f"{len(missing)} without completion; worker log:\n{worker.log_tail()}"
    assert all(len(events) == 1 for events in completions.values())
    for item in expected:
        (done,) = completions[item.request.request_id]
        assert done.status.value == item.status, (item.request, done.reasons)
    assert any(e.status == "DELIVERED" for e in expected)

    # The CLI, as a user runs it with ASSETLINE_KAFKA_* in its environment.
    result = _assetline(settings, "submit", "--count", "2", "--wait", "90")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout  # two request ids, then two completion lines
    assert all(" DELIVERED " in line for line in lines[2:]), result.stdout
    tail = _assetline(settings, "tail", "completed", "--limit", "32", "--timeout", "5")
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.splitlines()) == 32

    assert worker.alive(), worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert PASSWORD not in log
    # every client of the worker (Faust's, notify's, the watchdog's, the spend readers)
    # connected: a PLAINTEXT one on this listener logs these
    for trouble in ("SaslAuthenticationFailed", "Unable connect", "Unable to bootstrap"):
        assert trouble not in log, worker.log_tail()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"])
def test_each_sasl_mechanism_creates_and_reads_topics(
    secured: tuple[LocalBroker, Pki], tokens: TokenServer, tmp_path: Path, mechanism: str
) -> None:
    settings = _settings(secured, tmp_path, mechanism=mechanism, tokens=tokens)
    issued = tokens.issued
    names = TopicNames.with_prefix(settings.topic_prefix)

    async def go() -> list[Any]:
        created, values = await _round_trip(settings, b"v")
        assert names.requests in created
        assert await topic_exists(settings, names.requests)
        return values

    assert asyncio.run(go()) == [b"v"]
    if mechanism == "OAUTHBEARER":  # four clients, one token: reused until near its expiry
        assert tokens.issued - issued in (0, 1)
        assert tokens.scopes[-1] == "kafka"


def test_a_refused_oauth_client_is_one_line(
    secured: tuple[LocalBroker, Pki], tokens: TokenServer, tmp_path: Path
) -> None:
    settings = _settings(secured, tmp_path, mechanism="OAUTHBEARER", tokens=tokens)
    settings = settings.model_copy(update={"kafka_sasl_password": SecretStr(WRONG_PASSWORD)})
    result = _assetline(settings, "topics", timeout=90)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: cannot reach Kafka at {settings.kafka_bootstrap}: KafkaConnectionError: OAuth "
        f"token endpoint {tokens.url} answered HTTP 401 (invalid_client) without an "
        "access_token"
    ]


def test_a_wrong_password_is_one_line_not_a_hang(
    secured: tuple[LocalBroker, Pki], tmp_path: Path
) -> None:
    wrong = SecretStr(WRONG_PASSWORD)
    settings = _settings(secured, tmp_path).model_copy(update={"kafka_sasl_password": wrong})

    # the SDK
    async def connect() -> None:
        async with LineClient(settings):
            pass

    with pytest.raises(KafkaUnreachable) as caught:
        asyncio.run(connect())
    message = str(caught.value)
    assert "\n" not in message
    assert "Authentication failed" in message
    assert "SCRAM-SHA-512" in message
    assert WRONG_PASSWORD not in message

    # the CLI (submit) and the worker: exit 1 with one 'Error:' line naming the cause
    for args in (("submit", "--count", "1"), ("worker",)):
        result = _assetline(settings, *args, timeout=90)
        assert result.returncode == 1, (args, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, (args, result.stderr)
        assert errors[0].startswith(f"Error: cannot reach Kafka at {settings.kafka_bootstrap}: ")
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in errors[0], errors
        assert WRONG_PASSWORD not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
        assert "Unable connect" not in result.stderr  # said once, in the Error line
        assert result.stderr.splitlines()[-1] == errors[0]
        if args[0] == "submit":  # (a worker may warn about its config first)
            assert result.stderr.splitlines() == errors


def test_an_untrusted_broker_certificate_is_named(
    secured: tuple[LocalBroker, Pki], tmp_path: Path
) -> None:
    settings = _settings(secured, tmp_path).model_copy(update={"kafka_ssl_cafile": None})
    result = _assetline(settings, "topics", timeout=90)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot reach Kafka at {settings.kafka_bootstrap}: TLS: the certificate of "
        f"{settings.kafka_bootstrap} is not trusted (self-signed certificate in certificate "
        "chain)"
    )


def test_mutual_tls_with_a_client_certificate(
    secured: tuple[LocalBroker, Pki], tmp_path: Path
) -> None:
    broker, pki = secured
    uid = uuid.uuid4().hex[:12]
    settings = Settings(
        kafka_bootstrap=broker.bootstrap_of("MTLS"),
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
        kafka_ssl_key_password=CLIENT_KEY_PASSWORD,
        topic_prefix=f"mtls-{uid}",
        topic_partitions=2,
    )
    _, values = asyncio.run(_round_trip(settings, b"over mTLS"))
    assert values == [b"over mTLS"]

    # Without a client certificate the broker hangs up: one line that says what to check.
    no_cert = Settings(
        kafka_bootstrap=broker.bootstrap_of("MTLS"),
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=pki.ca,
        topic_prefix=f"mtls-{uid}",
    )
    result = _assetline(no_cert, "topics", timeout=90)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "(does this listener expect kafka_security_protocol=SSL, or a client certificate?)"
        )
    )
