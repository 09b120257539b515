"""HMAC marks on ``.requests`` records: a producer's signature, and the line's own origin mark.

Both are HMAC-SHA256 over the exact value bytes sent (so a mark cannot be moved onto other
content), hex-encoded as ``v1=<hex>`` in a Kafka header:

* ``assetline-signature`` is set by a *producer*, with its tenant's ``producer_secret``
  (:func:`sign_request`; the SDK's ``RequestSubmitter`` does it for you). The generate stage
  refuses an unsigned or badly signed request of a tenant that has a secret.
* ``assetline.origin`` is set only by the line itself when it re-submits a request as a later
  attempt (validate's re-generation, ``assetline replay``, ``assetline dlq replay``), with the
  line's internal secret. Producers never set it: a request with ``attempt > 1`` and no valid
  origin mark is refused, so nobody can squat another request's id with a high attempt.

The two are domain-separated (different message prefixes), so one can never stand for the other
even if an operator reused a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from schemas.records import GenerationRequest

SIGNATURE_HEADER: Final = "assetline-signature"
ORIGIN_HEADER: Final = "assetline.origin"
_VERSION: Final = "v1="
_PRODUCER_DOMAIN: Final = b"assetline/request/v1\x00"
_ORIGIN_DOMAIN: Final = b"assetline/origin/v1\x00"


def _secret_bytes(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _mac(secret: bytes | str, domain: bytes, value: bytes) -> str:
    digest = hmac.new(_secret_bytes(secret), domain + value, hashlib.sha256).hexdigest()
    return _VERSION + digest


def _header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """The last value of ``name`` (case-insensitive, like HTTP), or None."""
    found = None
    for key, value in headers or ():
        if key.lower() == name:
            found = value
    return found


def _matches(expected: str, given: bytes | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode("ascii"), given)


def sign_request(value: bytes, secret: bytes | str) -> tuple[str, bytes]:
    """The header a producer adds to a ``.requests`` record: ``(name, value)``."""
    return SIGNATURE_HEADER, _mac(secret, _PRODUCER_DOMAIN, value).encode("ascii")


def producer_signed(
    value: bytes, headers: Iterable[tuple[str, bytes]] | None, secret: bytes | str
) -> bool:
    """True when the record carries a valid producer signature made with ``secret``."""
    expected = _mac(secret, _PRODUCER_DOMAIN, value)
    return _matches(expected, _header(headers, SIGNATURE_HEADER))


def origin_mark(value: bytes, secret: bytes | str) -> tuple[str, bytes]:
    """The header the line adds when it re-submits ``value`` to ``.requests`` itself."""
    return ORIGIN_HEADER, _mac(secret, _ORIGIN_DOMAIN, value).encode("ascii")


def line_marked(
    value: bytes, headers: Iterable[tuple[str, bytes]] | None, secret: bytes | str
) -> bool:
    """True when the record carries the line's valid origin mark for exactly these bytes."""
    expected = _mac(secret, _ORIGIN_DOMAIN, value)
    return _matches(expected, _header(headers, ORIGIN_HEADER))


def without_marks(headers: Iterable[tuple[str, bytes]] | None) -> list[tuple[str, bytes]]:
    """Headers minus any signature or origin mark (a rewritten value needs fresh ones)."""
    drop = {SIGNATURE_HEADER, ORIGIN_HEADER}
    return [(k, v) for k, v in headers or () if k.lower() not in drop]


class RequestMarker(Protocol):
    """What the replay and dlq tools need to re-submit requests the way the line does.

    :class:`agents.tenants.Gatekeeper` is one: a source record is re-submitted (with a fresh
    origin mark) only when generate would have admitted it, so a replay cannot launder a
    forged or unsigned request.
    """

    def authenticity(
        self,
        request: GenerationRequest,
        value: bytes,
        headers: Iterable[tuple[str, bytes]] | None,
    ) -> object | None:
        """None when the record is authentic; else why not."""
        ...

    def mark(self, value: bytes) -> tuple[str, bytes]:
        """The origin header for ``value``."""
        ...
