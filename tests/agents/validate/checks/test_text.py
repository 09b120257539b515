"""Text checks: strict UTF-8, blank detection, and max_chars counted in code points."""

from __future__ import annotations

import pytest

from agents.validate.checks._base import Subject
from agents.validate.checks.text import TextMaxChars, TextNotEmpty, decode_utf8
from schemas.records import AssetKind, Constraints, GenerationRequest


def subject(data: bytes, max_chars: int | None = None) -> Subject:
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=AssetKind.TEXT,
        prompt_template="a tagline",
        constraints=Constraints(max_chars=max_chars),
    )
    return Subject(request=request, data=data, media_type="text/plain")


def test_non_blank_utf8_passes() -> None:
    result = TextNotEmpty()(subject("Grüße aus Köln 👋".encode()))
    assert result.code == "text.not_empty"
    assert result.passed
    assert result.measured == "16 chars"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "text is empty"), (" \n\t\u00a0\u2003".encode(), "text is only whitespace")],
    ids=["empty", "unicode-whitespace"],
)
def test_blank_text_fails(data: bytes, message: str) -> None:
    result = TextNotEmpty()(subject(data))
    assert not result.passed
    assert result.message == message


def test_invalid_utf8_fails_with_the_offending_offset() -> None:
    latin1 = "café au lait".encode("latin-1")  # é is 0xE9, byte 3, not valid UTF-8 here
    result = TextNotEmpty()(subject(latin1))
    assert not result.passed
    assert result.message == "not valid UTF-8: invalid continuation byte at byte 3"
    assert result.measured is None


def test_decoding_is_strict_not_lenient() -> None:
    assert decode_utf8(b"ok \xff").text is None
    assert decode_utf8("ok ✓".encode()).text == "ok ✓"


def test_max_chars_counts_code_points_not_bytes() -> None:
    text = "é" * 10  # 20 bytes, 10 code points
    result = TextMaxChars()(subject(text.encode(), max_chars=10))
    assert result.code == "text.max_chars"
    assert result.passed
    assert result.measured == "10"
    assert result.message == "10 chars within max_chars 10"


def test_max_chars_exceeded_says_by_how_much() -> None:
    result = TextMaxChars()(subject(("👍" * 12).encode(), max_chars=10))  # 48 bytes
    assert not result.passed
    assert result.measured == "12"
    assert result.message == "12 chars exceeds max_chars 10 by 2"


def test_unset_max_chars_passes_and_measures() -> None:
    result = TextMaxChars()(subject(b"x" * 5000))
    assert result.passed
    assert result.message == "no max_chars constraint"
    assert result.measured == "5000"


def test_max_chars_fails_on_invalid_utf8() -> None:
    result = TextMaxChars()(subject(b"\xc3\x28", max_chars=100))
    assert not result.passed
    assert result.message.startswith("not valid UTF-8")


def test_text_checks_apply_to_text_only() -> None:
    assert TextNotEmpty().kinds == frozenset({AssetKind.TEXT})
    assert TextMaxChars().kinds == frozenset({AssetKind.TEXT})
