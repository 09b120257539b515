"""A local Apache Kafka with secured listeners, and the certificates it needs, made in the test.

Beside its PLAINTEXT listener (start-up probe, inter-broker) the broker gets:

- ``SECURE``: SASL_SSL, mechanisms PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER; the
  SCRAM users are created by Kafka's own storage tool when the storage is formatted
  (``--add-scram``), the PLAIN users in the listener's JAAS config; OAUTHBEARER takes Kafka's
  default (unsecured, unsigned-JWT) validator, fed by :class:`TokenServer`, a local OAuth 2
  token endpoint (client credentials grant);
- ``MTLS``: SSL that requires a client certificate signed by the test CA.

The broker reads PEM directly (``ssl.keystore.type=PEM``): a CA, a broker certificate for
``127.0.0.1``/``localhost`` and a client certificate (its key encrypted with a password) are
generated with ``cryptography``.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from assetline.dev.broker import Listener, LocalBroker, free_ports
from tests.support.certs import certificate, name, new_key, pem, pkcs8

USER = "alice"
PASSWORD = "alice-secret-7f3a9c"
CLIENT_KEY_PASSWORD = "client-key-pass-51d2"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA, the broker and one client."""

    ca: Path  # CA certificate
    broker: Path  # broker key (PKCS#8, unencrypted) followed by its certificate chain
    client_cert: Path
    client_key: Path  # PKCS#8, encrypted with CLIENT_KEY_PASSWORD


def make_pki(folder: Path) -> Pki:
    """A CA, a broker certificate for 127.0.0.1/localhost and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = new_key()
    ca_cert = certificate("assetline test CA", ca_key, name("assetline test CA"), ca_key, ca=True)
    broker_key = new_key()
    broker_cert = certificate(
        "127.0.0.1",
        broker_key,
        ca_cert.subject,
        ca_key,
        usages=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        san=x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
    )
    client_key = new_key()
    client_cert = certificate(
        "assetline-worker",
        client_key,
        ca_cert.subject,
        ca_key,
        usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )
    pki = Pki(
        ca=folder / "ca.pem",
        broker=folder / "broker.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
    )
    pki.ca.write_bytes(pem(ca_cert))
    pki.broker.write_bytes(pkcs8(broker_key) + pem(broker_cert) + pem(ca_cert))
    pki.client_cert.write_bytes(pem(client_cert) + pem(ca_cert))
    pki.client_key.write_bytes(pkcs8(client_key, CLIENT_KEY_PASSWORD))
    for path in (pki.broker, pki.client_key):
        path.chmod(0o600)
    return pki


def secure_broker(root: Path, pki: Pki, *, heap: str = "512m") -> LocalBroker:
    """A :class:`LocalBroker` (not started) with the ``SECURE`` and ``MTLS`` listeners."""
    port, controller_port, secure_port, mtls_port = free_ports(4)
    jaas_plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{USER}="{PASSWORD}";'
    )
    jaas_scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    jaas_oauth = (
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
        'unsecuredLoginStringClaim_sub="broker";'
    )
    mechanisms = ("PLAIN", *SCRAM_MECHANISMS, "OAUTHBEARER")
    config = {
        "listener.name.secure.sasl.enabled.mechanisms": ",".join(mechanisms),
        "listener.name.secure.plain.sasl.jaas.config": jaas_plain,
        "listener.name.secure.oauthbearer.sasl.jaas.config": jaas_oauth,
        "listener.name.secure.ssl.keystore.type": "PEM",
        "listener.name.secure.ssl.keystore.location": str(pki.broker),
        "listener.name.mtls.ssl.keystore.type": "PEM",
        "listener.name.mtls.ssl.keystore.location": str(pki.broker),
        "listener.name.mtls.ssl.truststore.type": "PEM",
        "listener.name.mtls.ssl.truststore.location": str(pki.ca),
        "listener.name.mtls.ssl.client.auth": "required",
    }
    for mechanism in SCRAM_MECHANISMS:
        config[f"listener.name.secure.{mechanism.lower()}.sasl.jaas.config"] = jaas_scram
    return LocalBroker(
        root,
        port=port,
        controller_port=controller_port,
        heap=heap,
        listeners=(
            Listener("SECURE", secure_port, "SASL_SSL"),
            Listener("MTLS", mtls_port, "SSL"),
        ),
        config=config,
        scram_users=[
            f"{mechanism}=[name={USER},password={PASSWORD}]" for mechanism in SCRAM_MECHANISMS
        ],
    )


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class TokenServer:
    """A local OAuth 2 token endpoint: client credentials grant, HTTP Basic client auth.

    Answers an unsigned JWT (``alg: none``, ``sub`` = the client id, 5 minutes) to
    ``USER``/``PASSWORD``, 401 ``invalid_client`` to anything else; counts the tokens issued.
    """

    def __init__(self) -> None:
        self.issued = 0
        self.scopes: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if form.get("grant_type") != ["client_credentials"] or (
                    self.headers.get("Authorization") != expected
                ):
                    self._answer(401, {"error": "invalid_client"})
                    return
                now = int(time.time())
                claims = {"sub": USER, "iat": now, "exp": now + 300}
                server.issued += 1
                server.scopes.append(form.get("scope", [None])[0])
                token = f"{_b64({'alg': 'none'})}.{_b64(claims)}."
                self._answer(
                    200, {"access_token": token, "token_type": "bearer", "expires_in": 300}
                )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/oauth2/token"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
