"""Failed checks explained for people: palette swatches, highlighted prohibited terms.

The validation report records only each check's ``code``, ``message`` and ``measured``; the
palette check writes the off-palette colours into its message (``#aa2200 31.0% (nearest
#ff0000, ΔE 23.4)``) and the terms check each hit with its position (``'free' as 'FREE' at
char 12``), so both are read back from there. The brand's whole palette comes from the
profile when the console can load it (``profiles_dir``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Final

from schemas.records import CheckResult

_OFF_PALETTE: Final = re.compile(
    r"(#[0-9a-fA-F]{6}) ([0-9.]+)% \(nearest (#[0-9a-fA-F]{6}|[^,]+), ΔE ([0-9.]+)\)"
)
_QUOTED: Final = r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
_TERM_HIT: Final = re.compile(rf"{_QUOTED} as {_QUOTED}(?: at char (\d+))?")
#: Text previews show at most this much; the download link has the whole asset.
PREVIEW_CHARS: Final = 20_000


@dataclass(frozen=True)
class Swatch:
    color: str
    share: str
    nearest: str
    delta_e: str


@dataclass(frozen=True)
class TermHit:
    term: str
    excerpt: str
    start: int | None


@dataclass
class Explained:
    """One check as the detail page shows it."""

    check: CheckResult
    swatches: list[Swatch] = field(default_factory=list)
    hits: list[TermHit] = field(default_factory=list)


def _unquote(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]
    return value if isinstance(value, str) else text[1:-1]


def explain(check: CheckResult) -> Explained:
    out = Explained(check)
    if check.passed:
        return out
    if check.code.startswith("palette"):
        out.swatches = [
            Swatch(m.group(1).lower(), m.group(2), m.group(3).lower(), m.group(4))
            for m in _OFF_PALETTE.finditer(check.message)
        ]
    elif check.code == "text.prohibited":
        out.hits = [
            TermHit(
                _unquote(m.group(1)), _unquote(m.group(2)), int(m.group(3)) if m.group(3) else None
            )
            for m in _TERM_HIT.finditer(check.message)
        ]
    return out


def highlight(text: str, hits: list[TermHit]) -> list[tuple[str, bool]]:
    """``text`` cut into (segment, is_a_hit) pairs; a hit's span starts at its ``start`` (code
    points) and is as long as its excerpt. Overlapping or out-of-range hits are skipped."""
    spans = sorted(
        (h.start, h.start + len(h.excerpt))
        for h in hits
        if h.start is not None and h.excerpt and h.start + len(h.excerpt) <= len(text)
    )
    segments: list[tuple[str, bool]] = []
    at = 0
    for start, end in spans:
        if start < at:
            continue
        if start > at:
            segments.append((text[at:start], False))
        segments.append((text[start:end], True))
        at = end
    if at < len(text):
        segments.append((text[at:], False))
    return segments
