"""Kafka security settings: what every client is built with, and what is refused at start.

The broker round trips (SASL_SSL with each mechanism, mutual TLS, a wrong password) are in
tests/integration/test_secured_kafka.py.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from pathlib import Path

import click
import faust
import pytest
from aiokafka.errors import KafkaConnectionError
from faust.types.auth import AuthProtocol
from pydantic import ValidationError

from assetline.cli._common import load_settings
from assetline.dev.broker import free_ports
from streams.app import create_faust_app
from streams.bulk_restore import consumer_config
from streams.kafka_security import (
    ClientCredentialsTokens,
    KafkaUnreachable,
    client_kwargs,
    diagnose_connection,
    faust_credentials,
    kafka_secrets,
    start_client,
)
from streams.settings import Settings
from tests.support.secure_kafka import CLIENT_KEY_PASSWORD, Pki, make_pki

PASSWORD = "sasl-secret-value-42"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _sasl(pki: Pki, protocol: str = "SASL_SSL", **more: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap": "k1:9094,k2:9094",
        "kafka_security_protocol": protocol,
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": "alice",
        "kafka_sasl_password": PASSWORD,
    }
    if protocol == "SASL_SSL":
        values["kafka_ssl_cafile"] = pki.ca
    return Settings(**{**values, **more})


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = Settings(kafka_bootstrap="k:9092")
    assert client_kwargs(settings) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(settings) is None
    assert client_kwargs("k:9092") == {"bootstrap_servers": "k:9092"}


def test_sasl_ssl_client_options(pki: Pki) -> None:
    kwargs = client_kwargs(_sasl(pki))
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "k1:9094,k2:9094",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_sasl_plaintext_has_no_tls(pki: Pki) -> None:
    kwargs = client_kwargs(_sasl(pki, "SASL_PLAINTEXT"))
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in kwargs
    credentials = faust_credentials(_sasl(pki, "SASL_PLAINTEXT"))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT


def test_faust_gets_the_same_sasl_ssl_credentials(pki: Pki) -> None:
    settings = _sasl(pki, kafka_sasl_mechanism="SCRAM-SHA-512")
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("alice", PASSWORD)
    assert credentials.ssl_context is client_kwargs(settings)["ssl_context"]  # one, shared
    assert PASSWORD not in repr(credentials)


def test_oauthbearer_takes_tokens_from_one_shared_client_credentials_source(pki: Pki) -> None:
    settings = _sasl(
        pki,
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauth_token_url="https://idp.example/oauth2/token",
        kafka_sasl_oauth_scope="kafka",
    )
    kwargs = client_kwargs(settings)
    provider = kwargs.pop("sasl_oauth_token_provider")
    kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "k1:9094,k2:9094",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
    }
    assert isinstance(provider, ClientCredentialsTokens)
    assert (provider.url, provider.scope) == ("https://idp.example/oauth2/token", "kafka")
    assert client_kwargs(settings)["sasl_oauth_token_provider"] is provider  # one per process
    assert PASSWORD not in repr(provider)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.OAuthCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.oauth_cb is provider


def test_oauthbearer_needs_a_token_url_and_only_it_takes_one(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="needs kafka_sasl_oauth_token_url"):
        _sasl(pki, kafka_sasl_mechanism="OAUTHBEARER")
    with pytest.raises(ValidationError, match="set but kafka_sasl_mechanism is not OAUTHBEARER"):
        _sasl(pki, kafka_sasl_oauth_token_url="https://idp.example/oauth2/token")


def test_mutual_tls_with_an_encrypted_key(pki: Pki) -> None:
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
        kafka_ssl_key_password=CLIENT_KEY_PASSWORD,
    )
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in kwargs
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context is kwargs["ssl_context"]
    assert kafka_secrets(settings) == [CLIENT_KEY_PASSWORD]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "kafka_security_protocol=SASL_SSL needs kafka_sasl_mechanism, kafka_sasl_username, "
            "kafka_sasl_password (ASSETLINE_KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "alice",
            },
            "needs kafka_sasl_password (ASSETLINE_KAFKA_SASL_PASSWORD)",
        ),
        (
            {"kafka_sasl_username": "alice", "kafka_sasl_password": PASSWORD},
            "kafka_sasl_username, kafka_sasl_password set but kafka_security_protocol=PLAINTEXT",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI"},
            "kafka_sasl_mechanism",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": Path("/no/such/ca.pem")},
            "kafka_ssl_cafile: no such file '/no/such/ca.pem'",
        ),
        (
            {"kafka_ssl_cafile": Path("/etc/hostname")},
            "kafka_ssl_cafile set but kafka_security_protocol=PLAINTEXT: TLS needs SSL",
        ),
    ],
)
def test_security_settings_that_do_not_fit_are_refused(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**overrides)
    assert message in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_a_certificate_needs_its_key_and_a_wrong_key_password_is_named(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="kafka_ssl_certfile and kafka_ssl_keyfile go"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=pki.client_cert)
    wrong = "not-the-key-password-9"
    with pytest.raises(ValidationError) as caught:
        Settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=pki.ca,
            kafka_ssl_certfile=pki.client_cert,
            kafka_ssl_keyfile=pki.client_key,
            kafka_ssl_key_password=wrong,
        )
    text = str(caught.value)
    assert "cannot load the TLS files" in text
    assert "wrong kafka_ssl_key_password?" in text
    assert wrong not in text


def test_a_ca_file_that_is_no_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match="cannot load the TLS files"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=bad)


def test_secrets_never_show_in_repr_or_dump(pki: Pki) -> None:
    settings = _sasl(pki)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    assert PASSWORD not in settings.model_dump_json()
    assert kafka_secrets(settings) == [PASSWORD]


def test_the_cli_names_a_missing_setting_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ASSETLINE_KAFKA_SASL_PASSWORD", PASSWORD)
    with pytest.raises(click.ClickException) as caught:
        load_settings()
    message = caught.value.format_message()
    assert message == (
        "invalid settings: kafka_security_protocol=SASL_SSL needs kafka_sasl_mechanism, "
        "kafka_sasl_username (ASSETLINE_KAFKA_SASL_MECHANISM, ASSETLINE_KAFKA_SASL_USERNAME)"
    )


class _Starting:
    """Logs on aiokafka's logger while it starts, as a bootstrap that tried a dead host does."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.stopped = False

    async def start(self) -> None:
        logging.getLogger("aiokafka").error('Unable connect to "dead:9092": refused')
        if self.fail:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]")

    async def stop(self) -> None:
        self.stopped = True


def test_a_client_that_starts_anyway_still_logs_what_its_bootstrap_met(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _Starting(fail=False)
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        asyncio.run(start_client(client, "127.0.0.1:1"))
    assert [r.getMessage() for r in caplog.records] == ['Unable connect to "dead:9092": refused']
    assert not client.stopped


def test_a_client_that_cannot_start_is_closed_and_says_why_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (port,) = free_ports(1)  # nothing listens there: the diagnosis connects and is refused
    client = _Starting(fail=True)
    with (
        caplog.at_level(logging.ERROR, logger="aiokafka"),
        pytest.raises(KafkaUnreachable) as caught,
    ):
        asyncio.run(start_client(client, f"127.0.0.1:{port}"))
    assert client.stopped
    assert caplog.records == []  # the log line is held back: the error says it
    message = str(caught.value)
    assert message.startswith(f"cannot reach Kafka at 127.0.0.1:{port}: ")
    assert "\n" not in message
    assert message.endswith(
        f"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    )


async def _answer_api_versions(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A broker as far as a client's first request goes: ApiVersions, answered (no APIs)."""
    try:
        while True:
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            request = await reader.readexactly(size)
            _, version, correlation = struct.unpack(">hhi", request[:8])
            body = struct.pack(">ihi", correlation, 0, 0)  # no error, an empty API list
            if version >= 1:
                body += struct.pack(">i", 0)  # throttle_time_ms
            writer.write(struct.pack(">i", len(body)) + body)
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def test_the_diagnosis_tries_every_bootstrap_server_and_reports_each() -> None:
    """It used to probe the first server only: a dead first broker hid that the others
    answered (or a live first one hid that the others were down)."""
    (closed,) = free_ports(1)  # nothing listens there: refused

    async def go() -> tuple[str, str, int, int]:
        answering = await asyncio.start_server(_answer_api_versions, "127.0.0.1", 0)
        hanging_up = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
        async with answering, hanging_up:
            up = answering.sockets[0].getsockname()[1]
            rude = hanging_up.sockets[0].getsockname()[1]
            servers = f"127.0.0.1:{closed}, 127.0.0.1:{up},127.0.0.1:{rude}"
            every = await diagnose_connection(servers, timeout=30.0)
            fine = await diagnose_connection(f"127.0.0.1:{up},127.0.0.1:{up}", timeout=30.0)
        return every, fine, up, rude

    every, fine, up, rude = asyncio.run(go())
    assert every.split("; ") == [
        f"127.0.0.1:{closed}: ConnectionRefusedError: [Errno 111] Connect call failed "
        f"('127.0.0.1', {closed})",
        f"127.0.0.1:{up}: connected",
        f"127.0.0.1:{rude}: KafkaConnectionError: Connection at 127.0.0.1:{rude} closed "
        "(does this listener expect kafka_security_protocol=PLAINTEXT?)",
    ]
    assert fine == ""  # every server answered: nothing to report


def test_one_bootstrap_server_is_reported_as_before() -> None:
    (closed,) = free_ports(1)
    why = asyncio.run(diagnose_connection(f"127.0.0.1:{closed}", timeout=30.0))
    assert why == f"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', {closed})"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "OAUTHBEARER"])
def test_the_faust_app_and_its_bulk_changelog_reader_get_the_credentials(
    pki: Pki, tmp_path: Path, mechanism: str
) -> None:
    """streams.bulk_restore builds its consumer from the app's configuration, not from
    client_kwargs: it must still end up with the same security options."""
    oauth = (
        {"kafka_sasl_oauth_token_url": "https://idp.example/t"}
        if mechanism == "OAUTHBEARER"
        else {}
    )
    settings = _sasl(pki, kafka_sasl_mechanism=mechanism, data_dir=tmp_path / "w", **oauth)
    app = create_faust_app(settings)
    assert app.conf.broker_credentials is not None
    config = consumer_config(app)
    expected = client_kwargs(settings)
    for key in ("security_protocol", "sasl_mechanism", "ssl_context", *expected.keys()):
        if key != "bootstrap_servers":
            assert config[key] == expected[key], key
    assert config["bootstrap_servers"] == ["k1:9094", "k2:9094"]
