"""Text checks: the asset is real UTF-8 text, not blank, and within ``constraints.max_chars``.

Decoding is strict on purpose: a lenient decode would hide a provider that emits another
encoding or binary, and deliver mojibake downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from agents.validate.checks._base import Subject
from schemas.records import AssetKind, CheckResult

_TEXT: Final = frozenset({AssetKind.TEXT})


@dataclass(frozen=True)
class Decoded:
    """Strict UTF-8 decoding outcome: ``text`` or the reason it is not UTF-8."""

    text: str | None
    problem: str | None = None


def decode_utf8(data: bytes) -> Decoded:
    """Decode strictly; the problem names the first bad byte offset, useful for debugging."""
    try:
        return Decoded(data.decode("utf-8", errors="strict"))
    except UnicodeDecodeError as exc:
        return Decoded(None, f"not valid UTF-8: {exc.reason} at byte {exc.start}")


@dataclass(frozen=True)
class TextNotEmpty:
    """``text.not_empty``: strict UTF-8 with at least one non-whitespace character."""

    code: ClassVar[str] = "text.not_empty"
    kinds: ClassVar[frozenset[AssetKind]] = _TEXT

    def __call__(self, subject: Subject) -> CheckResult:
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return CheckResult(
                code=self.code, passed=False, message=str(decoded.problem), repairable=True
            )
        measured = f"{len(decoded.text)} chars"
        if not decoded.text.strip():
            message = "text is empty" if not decoded.text else "text is only whitespace"
            return CheckResult(
                code=self.code, passed=False, message=message, measured=measured, repairable=True
            )
        return CheckResult(
            code=self.code, passed=True, message="text is not empty", measured=measured
        )


@dataclass(frozen=True)
class TextMaxChars:
    """``text.max_chars``: at most ``constraints.max_chars`` Unicode code points (not bytes)."""

    code: ClassVar[str] = "text.max_chars"
    kinds: ClassVar[frozenset[AssetKind]] = _TEXT

    def __call__(self, subject: Subject) -> CheckResult:
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return CheckResult(
                code=self.code, passed=False, message=str(decoded.problem), repairable=True
            )
        length = len(decoded.text)
        limit = subject.request.constraints.max_chars
        if limit is None:
            message, passed = "no max_chars constraint", True
        elif length > limit:
            message, passed = f"{length} chars exceeds max_chars {limit} by {length - limit}", False
        else:
            message, passed = f"{length} chars within max_chars {limit}", True
        return CheckResult(
            code=self.code,
            passed=passed,
            message=message,
            measured=str(length),
            repairable=not passed,  # a shorter text is exactly what a re-generation can give
        )
