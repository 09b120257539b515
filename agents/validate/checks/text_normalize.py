"""A ``skeleton`` of text for matching prohibited terms, robust to cheap obfuscation.

A model (or a prompt injection) can dodge a plain substring test with fullwidth ``FREE``,
Cyrillic ``fr\\u0435\\u0435``, ``fr\\u200bee`` or ``fr33``. :func:`skeleton` folds all of
these to ``free``:

1. NFKC (fullwidth, ligatures, mathematical letters -> plain letters),
2. drop invisible code points: format characters (category Cf: zero-width space/joiner, soft
   hyphen, BiDi marks, tag characters), the other default-ignorables (variation selectors,
   fillers) and combining marks left over after NFKC (``f̲r̲e̲e̲``),
3. case-fold,
4. map confusable letters to their Latin look-alike (Unicode's confusables, as shipped by the
   ``confusable-homoglyphs`` package),
5. leetspeak: ``0->o 3->e 4->a 5->s 7->t @->a $->s``.

``1`` stands for either ``i`` or ``l``, so it stays ``1`` in a skeleton (as do the confusables
that are just a vertical stroke, such as Cyrillic palochka ``\\u04c0``), and
:func:`char_pattern` lets a term's ``i``/``l`` match it. Steps 2-5 are one ``str.translate``
table, built once, lazily; ASCII text skips NFKC. Skeletons exist for matching only: they are
never shown or stored.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import chain
from types import MappingProxyType
from typing import Final

#: Leetspeak read as letters. ``1`` is ambiguous (i or l) and handled by :func:`char_pattern`.
LEET: Final[Mapping[str, str]] = MappingProxyType(
    {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)

#: What ``1`` may stand for; skeletons keep it as ``1``.
AMBIGUOUS: Final = "1"

#: Characters that may space out the letters of a word (``f.r.e.e``, ``f r e e``) or separate
#: the words of a phrase, as a regex character class body. Checked on skeletons.
SEPARATORS: Final = r"\s._\-*~+/\\|,:;'\"`^=·•‧\u2010-\u2015\u2212\u30fb"

#: Default-ignorable code points that are not Cf or combining marks (fillers, Khmer inherent
#: vowels); they render as nothing, so they are dropped like zero-width spaces.
_IGNORABLE_EXTRA: Final = frozenset("\u115f\u1160\u17b4\u17b5\u3164\uffa0")
_DROPPED_CATEGORIES: Final = frozenset({"Cf", "Mn", "Me"})
_BIDI_WRAPPERS: Final = "\u200e\u200f"


#: Planes 0-3 and 14 hold every assigned code point that can fold (planes 4-13 are unassigned,
#: 15-16 private use); scanning only these builds the table four times faster.
_ASSIGNED_RANGES: Final = (range(0x40000), range(0xE0000, 0xE1000))


def _is_ascii_alnum(char: str) -> bool:
    return len(char) == 1 and char.isascii() and char.isalnum()


def _as_skeleton_char(ascii_char: str) -> str:
    """ASCII look-alike -> skeleton: lower case, leet read, vertical strokes ambiguous."""
    lowered = ascii_char.lower()
    lowered = LEET.get(lowered, lowered)
    return AMBIGUOUS if lowered in ("l", AMBIGUOUS) else lowered


def _confusable_targets() -> dict[str, str]:
    """Non-ASCII character -> skeleton char, for those whose homoglyph is one ASCII letter/digit.

    The data lists pairs in both directions (Cyrillic ``"\\u043e": ["o"]`` and
    ``"o": [..., "\\u043e", ...]``), so both are read. A character whose look-alikes disagree
    after folding is left alone.
    """
    with resources.files("confusable_homoglyphs").joinpath("confusables.json").open("rb") as f:
        data: dict[str, list[dict[str, str]]] = json.load(f)
    seen: dict[str, set[str]] = {}
    for raw_key, homoglyphs in data.items():
        key = raw_key.strip(_BIDI_WRAPPERS)
        if len(key) != 1:
            continue
        for homoglyph in homoglyphs:
            other = homoglyph["c"].strip(_BIDI_WRAPPERS)
            if len(other) != 1:
                continue
            if not key.isascii() and _is_ascii_alnum(other):
                seen.setdefault(key, set()).add(_as_skeleton_char(other))
            elif _is_ascii_alnum(key) and not other.isascii():
                seen.setdefault(other, set()).add(_as_skeleton_char(key))
    return {char: targets.pop() for char, targets in seen.items() if len(targets) == 1}


def _dropped(char: str) -> bool:
    return unicodedata.category(char) in _DROPPED_CATEGORIES or char in _IGNORABLE_EXTRA


@cache
def translation_table() -> Mapping[int, str]:
    """Steps 2-5 as one ``str.translate`` table (about 5k entries, built in ~0.1 s, once).

    Confusables win over case-folding, so an upper-case look-alike (Greek capital beta) still
    maps to its Latin letter instead of being folded to one that resembles none (small beta).
    """
    confusables = _confusable_targets()
    table: dict[int, str] = {}

    def fold(char: str) -> str:
        if _dropped(char):
            return ""
        if char in confusables:
            return confusables[char]
        if char.isascii():
            lowered = char.lower()
            return LEET.get(lowered, lowered)
        return char

    for codepoint in chain.from_iterable(_ASSIGNED_RANGES):
        char = chr(codepoint)
        if char in confusables or _dropped(char) or char.isascii():
            folded = fold(char)
        else:
            casefolded = char.casefold()
            if casefolded == char:
                continue
            folded = "".join(fold(part) for part in casefolded)
        if folded != char:
            table[codepoint] = folded
    return MappingProxyType(table)


def skeleton(text: str) -> str:
    """The matching form of ``text``: see the module docstring; ``1`` means i or l."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.translate(translation_table())


@lru_cache(maxsize=4096)
def _cluster_skeleton(cluster: str) -> str:
    return skeleton(cluster)


@dataclass(frozen=True)
class Skeleton:
    """A skeleton that remembers where each of its characters came from in the source text.

    ``starts[i]``/``ends[i]`` bound the source characters that produced skeleton character
    ``i``; both are None when the mapping is the identity (ASCII text).
    """

    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The source slice that produced ``self.text[start:end]`` (``end > start``)."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _clusters(text: str) -> Iterator[tuple[int, int]]:
    """A base character with its combining marks: the unit NFKC composes within."""
    start = 0
    for index in range(1, len(text)):
        if not unicodedata.combining(text[index]):
            yield start, index
            start = index
    if text:
        yield start, len(text)


def skeleton_map(text: str) -> Skeleton:
    """:func:`skeleton` with source offsets, to quote what matched; slower, so use it on hits.

    Non-ASCII text is folded one cluster at a time, which equals the whole-text skeleton except
    for compositions across clusters (Hangul jamo), irrelevant to Latin terms.
    """
    if text.isascii():
        return Skeleton(skeleton(text))
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for start, end in _clusters(text):
        piece = _cluster_skeleton(text[start:end])
        pieces.append(piece)
        starts.extend([start] * len(piece))
        ends.extend([end] * len(piece))
    return Skeleton("".join(pieces), tuple(starts), tuple(ends))


def char_readings(char: str) -> str:
    """Skeleton characters a term's ``char`` accepts: itself, plus ``1`` for ``i`` and ``l``."""
    if char in ("i", "l"):
        return char + AMBIGUOUS
    if char == AMBIGUOUS:
        return AMBIGUOUS + "il"
    return char


def char_pattern(char: str) -> str:
    """Regex for one skeleton character of a term (see :func:`char_readings`)."""
    readings = char_readings(char)
    return re.escape(readings) if len(readings) == 1 else f"[{re.escape(readings)}]"


def caseless(text: str) -> str:
    """NFKC, case-folded, whitespace runs collapsed to one space: how disclaimers compare."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


__all__ = [
    "AMBIGUOUS",
    "LEET",
    "SEPARATORS",
    "Skeleton",
    "caseless",
    "char_pattern",
    "char_readings",
    "skeleton",
    "skeleton_map",
    "translation_table",
]
