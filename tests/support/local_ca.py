"""Test helpers: a throw-away CA and a server certificate for one DNS name (no IP address SAN).

A certificate without an IP SAN proves the client verified the *name*: connecting to
127.0.0.1 and checking the certificate against the address would fail.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from tests.support.certs import certificate, name, new_key, pem, pkcs8


@dataclass
class LocalCA:
    """Signs one server certificate; gives the server and client SSL contexts."""

    folder: Path
    server_name: str
    sni_seen: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        ca_key = new_key()
        ca = certificate("assetline test CA", ca_key, name("assetline test CA"), ca_key, ca=True)
        key = new_key()
        leaf = certificate(
            self.server_name,
            key,
            ca.subject,
            ca_key,
            san=x509.SubjectAlternativeName([x509.DNSName(self.server_name)]),
        )
        self.ca_file = self.folder / "ca.pem"
        self.cert_file = self.folder / "server.pem"
        self.key_file = self.folder / "server.key"
        self.ca_file.write_bytes(pem(ca))
        self.cert_file.write_bytes(pem(leaf))
        self.key_file.write_bytes(pkcs8(key))

    def server_context(self) -> ssl.SSLContext:
        """Serves the certificate and records the SNI name of every handshake."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)

        def record(sock: object, name: str | None, ctx: ssl.SSLContext) -> None:
            self.sni_seen.append(name)

        context.sni_callback = record  # type: ignore[assignment]
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this CA only; hostname checking on, as in production."""
        return ssl.create_default_context(cafile=str(self.ca_file))
