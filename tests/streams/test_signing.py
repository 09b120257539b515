"""Producer signatures and the line's origin marks on ``.requests`` records."""

from __future__ import annotations

import hashlib
import hmac

from streams.signing import (
    ORIGIN_HEADER,
    SIGNATURE_HEADER,
    line_marked,
    origin_mark,
    producer_signed,
    sign_request,
    without_marks,
)

VALUE = b"\xc3\x01avro-bytes-of-a-request"


def test_a_producer_signature_is_hmac_sha256_over_the_value_bytes() -> None:
    name, header = sign_request(VALUE, "tenant-key")
    assert name == SIGNATURE_HEADER
    # Documented so that producers in other languages can compute it.
    digest = hmac.new(b"tenant-key", b"assetline/request/v1\x00" + VALUE, hashlib.sha256)
    assert header == b"v1=" + digest.hexdigest().encode()
    assert producer_signed(VALUE, [(name, header)], "tenant-key")
    assert producer_signed(VALUE, [(name.upper(), header)], b"tenant-key")


def test_a_signature_does_not_hold_for_other_bytes_another_key_or_no_header() -> None:
    header = [sign_request(VALUE, "tenant-key")]
    assert not producer_signed(VALUE + b"x", header, "tenant-key")
    assert not producer_signed(VALUE, header, "other-key")
    assert not producer_signed(VALUE, [], "tenant-key")
    assert not producer_signed(VALUE, [(SIGNATURE_HEADER, b"v1=00")], "tenant-key")


def test_signature_and_origin_mark_cannot_stand_for_each_other() -> None:
    """Domain separation: a producer who knows the line secret's twin still cannot forge a mark."""
    _, signature = sign_request(VALUE, "same")
    assert not line_marked(VALUE, [(ORIGIN_HEADER, signature)], "same")
    _, mark = origin_mark(VALUE, "same")
    assert not producer_signed(VALUE, [(SIGNATURE_HEADER, mark)], "same")
    assert line_marked(VALUE, [(ORIGIN_HEADER, mark)], "same")


def test_without_marks_drops_both_headers_only() -> None:
    headers = [
        sign_request(VALUE, "k"),
        origin_mark(VALUE, "k"),
        ("traceparent", b"00-abc"),
        ("Assetline-Signature", b"v1=zz"),
    ]
    assert without_marks(headers) == [("traceparent", b"00-abc")]
