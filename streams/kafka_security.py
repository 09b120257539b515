"""The one way any Kafka client of the project is configured: bootstrap servers and security.

Every aiokafka client (consumer, producer, admin) is built with ``**client_kwargs(kafka)``
and the Faust app with ``broker_credentials=faust_credentials(settings)``, so TLS and SASL
reach all of them from the same ``kafka_*`` settings; ``tests/test_kafka_clients.py`` fails
if a module builds an aiokafka client any other way.

``kafka`` is the :class:`~streams.settings.Settings` of the line, or a bare ``host:port``
bootstrap string, which means PLAINTEXT (tests and local tools that talk to the embedded
broker).

Secrets (the SASL password or OAuth client secret, the key password) go into the client
options only: they are not in any message this module writes, and :func:`kafka_secrets` lists
them for redaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import re
import ssl
import time
from typing import TYPE_CHECKING, Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

from schemas.errors import AssetlineError
from streams.redaction import redact
from streams.settings import Settings, load_ssl_context

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = [
    "ClientCredentialsTokens",
    "KafkaUnreachable",
    "bootstrap_of",
    "client_kwargs",
    "connect_failure",
    "diagnose_connection",
    "faust_credentials",
    "kafka_secrets",
    "ssl_context",
    "start_client",
    "token_provider",
]

_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


def bootstrap_of(kafka: Settings | str) -> str:
    """``host:port[,host:port]`` of ``kafka``, for messages (never holds a secret)."""
    return kafka if isinstance(kafka, str) else kafka.kafka_bootstrap


def client_kwargs(kafka: Settings | str) -> dict[str, Any]:
    """Keyword arguments every aiokafka client is built with: servers and security.

    ``AIOKafkaConsumer(**client_kwargs(settings), group_id=...)``; the same for
    ``AIOKafkaProducer`` and ``AIOKafkaAdminClient``.
    """
    if isinstance(kafka, str):
        return {"bootstrap_servers": kafka}  # aiokafka's default protocol: PLAINTEXT
    settings = kafka
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": protocol,
    }
    if protocol in _TLS:
        kwargs["ssl_context"] = ssl_context(settings)
    if protocol in _SASL:
        assert settings.kafka_sasl_password is not None  # check_kafka_security made sure
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            kwargs["sasl_plain_username"] = settings.kafka_sasl_username
            kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The Faust app's ``broker_credentials`` (None = PLAINTEXT), from the same settings.

    Faust hands them to every client it builds (its consumers, producer, table readers) and
    :mod:`streams.bulk_restore` reads them from the app's configuration.
    """
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    context = ssl_context(settings) if protocol == "SASL_SSL" else None
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=token_provider(settings), ssl_context=context)
    assert settings.kafka_sasl_password is not None  # check_kafka_security made sure
    # Faust derives SASL_SSL from the presence of an SSL context, SASL_PLAINTEXT otherwise.
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of SSL and SASL_SSL clients (one per distinct file set, shared)."""
    key_password = settings.kafka_ssl_key_password
    return _ssl_context(
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
        key_password.get_secret_value() if key_password is not None else None,
        settings.kafka_ssl_check_hostname,
    )


#: One context per distinct file set, shared by every client of the process.
_ssl_context = functools.lru_cache(maxsize=8)(load_ssl_context)


class ClientCredentialsTokens(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens from an OAuth 2 token endpoint (client credentials grant).

    One per settings, shared by every client of the process: a token is reused until
    ``REFRESH_MARGIN_S`` before it expires. A refused or unreadable answer is raised as a
    :class:`KafkaConnectionError` naming the endpoint and the HTTP status (never the secret),
    so a client's start-up reports it like any other connect failure.
    """

    REFRESH_MARGIN_S = 60.0

    def __init__(
        self, url: str, client_id: str, secret: str, scope: str | None, timeout_s: float = 10.0
    ) -> None:
        self.url = url
        self._client_id = client_id
        self._secret = secret
        self.scope = scope
        self.timeout_s = timeout_s
        self._token: str | None = None
        self._expires = 0.0
        self.fetched = 0  # tokens asked for (tests, diagnostics)

    def __repr__(self) -> str:
        return f"<ClientCredentialsTokens {self.url} client_id={self._client_id!r}>"

    async def token(self) -> str:
        now = time.monotonic()
        if self._token is not None and now < self._expires - self.REFRESH_MARGIN_S:
            return self._token
        token, lifetime = await self._fetch()
        self._token, self._expires = token, now + lifetime
        return token

    async def _fetch(self) -> tuple[str, float]:
        import httpx

        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as http:
                response = await http.post(
                    self.url, data=form, auth=(self._client_id, self._secret)
                )
        except httpx.HTTPError as exc:
            raise KafkaConnectionError(
                redact(f"OAuth token endpoint {self.url}: {type(exc).__name__}", [self._secret])
            ) from None
        self.fetched += 1
        try:
            body = response.json()
        except ValueError:
            body = None
        ok = response.status_code == 200 and isinstance(body, dict)
        token = body.get("access_token") if ok else None
        if not isinstance(token, str) or not token:
            why = body.get("error") if isinstance(body, dict) else None
            raise KafkaConnectionError(
                f"OAuth token endpoint {self.url} answered HTTP {response.status_code}"
                + (f" ({why})" if isinstance(why, str) else "")
                + " without an access_token"
            )
        try:
            lifetime = float(body.get("expires_in", 300))
        except (TypeError, ValueError):
            lifetime = 300.0
        return token, lifetime


def token_provider(settings: Settings) -> ClientCredentialsTokens:
    """The OAUTHBEARER token source of ``settings`` (one per distinct endpoint and client)."""
    assert settings.kafka_sasl_oauth_token_url is not None  # check_kafka_security made sure
    assert settings.kafka_sasl_username is not None
    assert settings.kafka_sasl_password is not None
    return _token_provider(
        settings.kafka_sasl_oauth_token_url,
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        settings.kafka_sasl_oauth_scope,
    )


_token_provider = functools.lru_cache(maxsize=8)(ClientCredentialsTokens)


def kafka_secrets(settings: Settings) -> list[str]:
    """The Kafka secrets of ``settings`` in clear, to scrub from text bound for events/logs."""
    secrets = (
        getattr(settings, "kafka_sasl_password", None),
        getattr(settings, "kafka_ssl_key_password", None),
    )
    return [secret.get_secret_value() for secret in secrets if secret is not None]


async def diagnose_connection(kafka: Settings | str, timeout: float = 10.0) -> str:
    """Why a client could not start: one connection to each bootstrap server (at once, each
    within ``timeout``), with the same security, and what each met in one line (aiokafka's
    own start error only says it could not bootstrap; the cause - refused, TLS,
    authentication - is in a log line).

    One server: its error alone. Several: ``host:port: <error or 'connected'>`` for each,
    ``; ``-separated, in the bootstrap list's order. Returns ``""`` when every connection
    succeeds.
    """
    servers = [s.strip() for s in bootstrap_of(kafka).split(",") if s.strip()]
    found = await asyncio.gather(*(_diagnose_one(kafka, s, timeout) for s in servers))
    if len(found) == 1 or not any(found):
        return found[0] if found else ""
    reports = zip(servers, found, strict=True)
    return "; ".join(f"{server}: {why or 'connected'}" for server, why in reports)


async def _diagnose_one(kafka: Settings | str, server: str, timeout: float) -> str:
    """What one connection to ``server`` met, in one line; ``""`` when it succeeded."""
    from aiokafka.conn import create_conn

    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        return f"{server!r} is not host:port"
    kwargs = client_kwargs(kafka)
    del kwargs["bootstrap_servers"]
    try:
        async with asyncio.timeout(timeout):
            conn = await create_conn(
                host.strip("[]"), int(port), request_timeout_ms=int(timeout * 1000), **kwargs
            )
    except TimeoutError:
        return f"no answer from {server} within {timeout:g}s"
    except ssl.SSLCertVerificationError as exc:
        return f"TLS: the certificate of {server} is not trusted ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f"TLS handshake with {server} failed ({exc.reason or exc})"
    except Exception as exc:
        name = type(exc).__name__
        # aiokafka's broker errors read "[Error 58] SaslAuthenticationFailed: <text>"
        text = re.sub(r"^\[Error \d+\] \w+: ", "", " ".join(str(exc).split()))
        text = text if text.startswith(name) else f"{name}: {text}".rstrip(": ")
        protocol = "PLAINTEXT" if isinstance(kafka, str) else kafka.kafka_security_protocol
        if text.endswith(" closed"):  # the broker hung up: a listener of another kind
            text += f" (does this listener expect kafka_security_protocol={protocol}" + (
                ", or a client certificate?)" if protocol == "SSL" else "?)"
            )
        secrets = [] if isinstance(kafka, str) else kafka_secrets(kafka)
        return redact(text, secrets)
    conn.close()
    return ""


class KafkaUnreachable(AssetlineError, KafkaConnectionError):  # type: ignore[misc]
    """A client could not start; the message is one line saying why (no secret in it)."""

    code = "kafka.unreachable"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot reach Kafka"


#: The start-up under way in this context (tasks it creates inherit it), if any.
_starting: contextvars.ContextVar[_HeldBack | None] = contextvars.ContextVar(
    "assetline_kafka_starting", default=None
)


class _HeldBack(logging.Filter):
    """Holds back what aiokafka logs about its bootstrap from one start-up (and its tasks)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        mine = _starting.get() is self
        if mine:
            self.held.append(record)
        return not mine


async def start_client(client: Any, kafka: Settings | str) -> None:
    """``await client.start()``; a failure to connect is raised as :class:`KafkaUnreachable`
    with the cause (wrong password, untrusted certificate, ...) instead of aiokafka's
    'Unable to bootstrap'. The client is closed first.

    While it starts, what aiokafka logs about its bootstrap ('Unable connect to ...') is held
    back: written afterwards when the client started anyway (another bootstrap server
    answered), dropped when it failed, because the raised error then says it, once.
    """
    held = _HeldBack()
    token = _starting.set(held)
    bootstrap_log = logging.getLogger("aiokafka")  # aiokafka.client logs on it
    bootstrap_log.addFilter(held)
    try:
        await client.start()
    except KafkaConnectionError as exc:
        bootstrap_log.removeFilter(held)
        close = getattr(client, "stop", None) or client.close
        with contextlib.suppress(Exception):
            await close()
        why = await diagnose_connection(kafka, timeout=5.0)
        text = " ".join(str(exc).split()) or type(exc).__name__
        secrets = [] if isinstance(kafka, str) else kafka_secrets(kafka)
        raise KafkaUnreachable(
            redact(f"cannot reach Kafka at {bootstrap_of(kafka)}: {why or text}", secrets)
        ) from None
    finally:
        bootstrap_log.removeFilter(held)
        _starting.reset(token)
    for record in held.held:
        bootstrap_log.handle(record)


def connect_failure(kafka: Settings | str, exc: BaseException) -> str:
    """One line for a client that could not start: what it said, and why when a fresh
    connection can tell (:func:`diagnose_connection`, bounded to a few seconds)."""
    if isinstance(exc, KafkaUnreachable):
        return str(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    try:
        why = asyncio.run(diagnose_connection(kafka, timeout=5.0))
    except RuntimeError:  # called inside a running loop: no diagnosis
        why = ""
    secrets = [] if isinstance(kafka, str) else kafka_secrets(kafka)
    return redact(f"cannot reach Kafka at {bootstrap_of(kafka)}: {why or text}", secrets)
