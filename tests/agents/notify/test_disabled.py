"""The disabled-endpoints topic format and registry: encode, decode, apply, without a broker."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agents.notify.disabled import (
    DisabledEndpoints,
    DisabledEntry,
    DisabledRecordError,
    decode_record,
    disabled_entry,
    encode_entry,
    entry_json,
    redact_url,
    tombstone_key,
    url_origin,
    url_sha256,
)

URL = "https://user:pw@Hooks.Example:8443/services/T0/B0/s3cr3t?token=t0k3n#frag"
AT = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_records_are_keyed_by_the_url_digest_and_never_hold_the_url() -> None:
    entry = disabled_entry(URL, "msg_1", 410, AT)
    key, value = encode_entry(entry)
    assert key == hashlib.sha256(URL.encode()).hexdigest().encode()
    assert json.loads(value) == {
        "url_sha256": key.decode(),
        "origin": "https://hooks.example:8443",
        "disabled_at": "2025-05-01T12:00:00Z",
        "webhook_id": "msg_1",
        "status": 410,
    }
    for secret in (b"s3cr3t", b"t0k3n", b"pw", b"services"):
        assert secret not in key + value


def test_encode_then_decode_gives_the_entry_back() -> None:
    entry = disabled_entry(URL, "msg_1", 410, AT.astimezone(timezone(timedelta(hours=2))))
    assert entry.disabled_at == AT
    assert entry.disabled_at.tzinfo is UTC
    assert decode_record(*encode_entry(entry)) == (entry.url_sha256, entry)


def test_a_tombstone_decodes_to_no_entry() -> None:
    assert decode_record(tombstone_key(URL), None) == (url_sha256(URL), None)
    assert tombstone_key(url_sha256(URL)) == tombstone_key(URL)  # by digest or by URL


def test_apply_disables_then_a_tombstone_enables_again() -> None:
    registry = DisabledEndpoints()
    other = "https://hooks.example/other"
    registry.apply(*encode_entry(disabled_entry(URL, "msg_1", 410, AT)))
    registry.apply(*encode_entry(disabled_entry(other, "msg_2", 410, AT - timedelta(days=1))))
    assert URL in registry
    assert other in registry
    assert [e.webhook_id for e in registry.entries()] == ["msg_2", "msg_1"]  # oldest first

    registry.apply(tombstone_key(URL), None)
    assert URL not in registry
    assert other in registry
    registry.apply(tombstone_key(URL), None)  # a second tombstone changes nothing
    assert len(registry) == 1

    registry.apply(*encode_entry(disabled_entry(URL, "msg_3", 410, AT)))  # gone again
    assert registry.get(URL) == registry.get(url_sha256(URL))
    entry = registry.get(URL)
    assert entry is not None
    assert entry.webhook_id == "msg_3"


def test_own_disable_matches_what_the_topic_would_say() -> None:
    registry = DisabledEndpoints()
    entry = registry.disable(URL, "msg_1", 410, AT)
    assert URL in registry
    assert URL + "&x=1" not in registry  # exactly the URL a job carries
    assert decode_record(*encode_entry(entry)) == (entry.url_sha256, entry)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, None),
        (b"not-a-digest", None),
        (url_sha256(URL).upper().encode(), None),
        (url_sha256(URL).encode(), b"{not json"),
        (url_sha256(URL).encode(), b"[]"),
        (url_sha256(URL).encode(), b'{"url_sha256": "x"}'),
        # another key's value: must not disable this key
        (url_sha256(URL).encode(), encode_entry(disabled_entry("https://b.example/", "m"))[1]),
    ],
)
def test_malformed_records_are_refused_and_change_nothing(
    key: bytes | None, value: bytes | None
) -> None:
    registry = DisabledEndpoints()
    registry.disable("https://kept.example/", "m")
    with pytest.raises(DisabledRecordError):
        registry.apply(key, value)
    assert len(registry) == 1
    assert URL not in registry


@pytest.mark.parametrize(
    ("field", "bad"), [("status", "410"), ("status", True), ("webhook_id", 7), ("origin", None)]
)
def test_fields_of_the_wrong_type_are_refused(field: str, bad: object) -> None:
    key, value = encode_entry(disabled_entry(URL, "msg_1", 410, AT))
    doc = json.loads(value)
    doc[field] = bad
    with pytest.raises(DisabledRecordError, match="wrong type"):
        decode_record(key, json.dumps(doc).encode())


def test_a_naive_time_is_read_as_utc() -> None:
    key, value = encode_entry(disabled_entry(URL, "msg_1", 410, AT))
    doc = json.loads(value)
    doc["disabled_at"] = "2025-05-01T12:00:00"
    _, entry = decode_record(key, json.dumps(doc).encode())
    assert entry is not None
    assert entry.disabled_at == AT


def test_urls_are_redacted_for_logs() -> None:
    assert url_origin(URL) == "https://hooks.example:8443"
    assert url_origin("http://[::1]:9/x") == "http://[::1]:9"
    assert redact_url(URL) == "https://hooks.example:8443/services/T0/B0/s3cr3t"
    assert redact_url("http://h.example/hooks/down?sig=abc") == "http://h.example/hooks/down"
    assert redact_url("http://h.example:99999/") == "invalid-url"


def test_entry_json_is_the_record_value() -> None:
    entry = DisabledEntry(url_sha256(URL), "https://hooks.example:8443", AT, "msg_1", 410)
    assert entry_json(entry) == json.loads(encode_entry(entry)[1])
