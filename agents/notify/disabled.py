"""Endpoints that answered 410 Gone, kept in a compacted topic so every worker and restart agrees.

``<prefix>.webhooks.disabled`` is keyed by the sha256 of the URL and holds one small JSON
document per disabled endpoint; a tombstone (null value) enables it again. URLs can carry
tokens (in the query, or in the path for chat-style webhooks) and a compacted topic keeps its
records forever, so neither key nor value holds the URL: the value names only its origin,
enough for an operator to recognise the receiver, who re-enables it by URL or by digest.

The functions here are pure (bytes in, records out) so the topic format is tested without a
broker; :class:`DisabledEndpoints` is one process's view of the topic.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from schemas.errors import AssetlineError

_DIGEST = re.compile(r"[0-9a-f]{64}")


class DisabledRecordError(AssetlineError, ValueError):
    """A record of the disabled-endpoints topic that does not follow its format."""

    code = "webhook.bad_disabled_record"


def url_sha256(url: str) -> str:
    """The record key of ``url``: exactly the URL a job carries, hashed (it may hold tokens)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def is_url_sha256(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


_INVALID = "invalid-url"


def url_origin(url: str) -> str:
    """``scheme://host[:port]``: names the receiver without userinfo, path or query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return _INVALID
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def redact_url(url: str) -> str:
    """``url`` fit for logs and dead-letter reasons: no userinfo, query or fragment."""
    origin = url_origin(url)
    return origin if origin == _INVALID else origin + urlsplit(url).path


@dataclass(frozen=True)
class DisabledEntry:
    """One disabled endpoint: which URL (by digest), when, and the call that answered ``status``."""

    url_sha256: str
    origin: str
    disabled_at: datetime
    webhook_id: str
    status: int = 410


def disabled_entry(
    url: str, webhook_id: str, status: int = 410, at: datetime | None = None
) -> DisabledEntry:
    return DisabledEntry(
        url_sha256=url_sha256(url),
        origin=url_origin(url),
        disabled_at=(at or datetime.now(UTC)).astimezone(UTC),
        webhook_id=webhook_id,
        status=status,
    )


def encode_entry(entry: DisabledEntry) -> tuple[bytes, bytes]:
    """``(key, value)`` of the record that disables ``entry``'s endpoint."""
    value = {
        "url_sha256": entry.url_sha256,
        "origin": entry.origin,
        "disabled_at": entry.disabled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "webhook_id": entry.webhook_id,
        "status": entry.status,
    }
    return entry.url_sha256.encode("ascii"), json.dumps(value, separators=(",", ":")).encode()


def tombstone_key(url_or_digest: str) -> bytes:
    """The key whose tombstone re-enables an endpoint given by URL or by its sha256."""
    digest = url_or_digest if is_url_sha256(url_or_digest) else url_sha256(url_or_digest)
    return digest.encode("ascii")


def decode_record(key: bytes | None, value: bytes | None) -> tuple[str, DisabledEntry | None]:
    """``(digest, entry)`` of one record; ``entry`` is None for a tombstone (re-enabled).

    Raise :class:`DisabledRecordError` for anything else, so a malformed record never
    disables (nor enables) an endpoint by accident.
    """
    digest = (key or b"").decode("ascii", errors="replace")
    if not is_url_sha256(digest):
        raise DisabledRecordError("record key is not a sha256 hex digest")
    if value is None:
        return digest, None
    try:
        doc = json.loads(value)
        at = datetime.fromisoformat(doc["disabled_at"])
        entry = DisabledEntry(
            url_sha256=doc["url_sha256"],
            origin=doc["origin"],
            disabled_at=(at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC),
            webhook_id=doc["webhook_id"],
            status=doc["status"],
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise DisabledRecordError(f"record value does not parse: {type(exc).__name__}") from None
    fields = (entry.origin, entry.webhook_id)
    if not all(isinstance(text, str) for text in fields) or type(entry.status) is not int:
        raise DisabledRecordError("record value has fields of the wrong type")
    if entry.url_sha256 != digest:
        raise DisabledRecordError("record value is for another key")
    return digest, entry


def entry_json(entry: DisabledEntry) -> dict[str, object]:
    """The entry as the CLI prints it."""
    _, value = encode_entry(entry)
    loaded: dict[str, object] = json.loads(value)
    return loaded


@dataclass
class DisabledEndpoints:
    """The endpoints disabled as one process knows them: its own 410s and the topic's records."""

    _entries: dict[str, DisabledEntry] = field(default_factory=dict)

    def disable(
        self, url: str, webhook_id: str = "", status: int = 410, at: datetime | None = None
    ) -> DisabledEntry:
        """Record that ``url`` answered ``status``; returns the entry to publish."""
        entry = disabled_entry(url, webhook_id, status, at)
        self._entries[entry.url_sha256] = entry
        return entry

    def apply(self, key: bytes | None, value: bytes | None) -> DisabledEntry | None:
        """Apply one topic record (raises :class:`DisabledRecordError` on a malformed one)."""
        digest, entry = decode_record(key, value)
        if entry is None:
            self._entries.pop(digest, None)
        else:
            self._entries[digest] = entry
        return entry

    def entries(self) -> list[DisabledEntry]:
        """Oldest first."""
        return sorted(self._entries.values(), key=lambda entry: entry.disabled_at)

    def get(self, url_or_digest: str) -> DisabledEntry | None:
        return self._entries.get(tombstone_key(url_or_digest).decode("ascii"))

    def __contains__(self, url: object) -> bool:
        return isinstance(url, str) and url_sha256(url) in self._entries

    def __len__(self) -> int:
        return len(self._entries)
