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
5. Latin letters with diacritics, hooks or small-capital forms that have no confusable entry
   are transliterated (``frée``, ``ƒree``, ``ꜰʀᴇᴇ`` -> ``free``, by ``anyascii``), and
   regional-indicator symbols read as their letters (``🇫🇷🇪🇪`` -> ``free``),
6. leetspeak: ``0->o 3->e 4->a 5->s 7->t 9->g @->a $->s €->e``.

Before that, :func:`decode_markup` undoes what a renderer or browser would: HTML entities
(``fr&#101;e``), tags inside a word (``fr<b></b>ee``) and percent-encoding (``fr%65e``); and
:func:`visual_order` gives the order a BiDi override run is displayed in (U+202E ``eerf``
shows as ``free``). Both keep offsets into the source, so a hit quotes the text as written.

``1`` stands for either ``i`` or ``l``, so it stays ``1`` in a skeleton (as do the confusables
that are just a vertical stroke, such as Cyrillic palochka ``\\u04c0``), and
:func:`char_pattern` lets a term's ``i``/``l`` match it. Steps 2-6 are one ``str.translate``
table, built once, lazily; ASCII text skips NFKC. Folding diacritics means a term ``fur`` also
matches German ``für``: terms are matched as letters, not per language. Skeletons exist for
matching only: they are never shown or stored.
"""

from __future__ import annotations

import html
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
from urllib.parse import unquote

from anyascii import anyascii

#: Leetspeak read as letters. ``1`` is ambiguous (i or l) and handled by :func:`char_pattern`.
LEET: Final[Mapping[str, str]] = MappingProxyType(
    {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "9": "g", "@": "a", "$": "s", "\u20ac": "e"}
)

#: What ``1`` may stand for; skeletons keep it as ``1``.
AMBIGUOUS: Final = "1"

#: Characters that may space out the letters of a word (``f.r.e.e``, ``f r e e``) or separate
#: the words of a phrase, as a regex character class body. Checked on skeletons.
SEPARATORS: Final = r"\s._\-*~+/\\|,:;'\"`^=·•‧\u2010-\u2015\u2018\u2019\u02bc\u2212\u30fb"

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


#: Regional-indicator symbols (flag letters) A..Z.
_REGIONAL_A: Final = 0x1F1E6
_REGIONAL: Final = range(_REGIONAL_A, _REGIONAL_A + 26)


def _latin_letters(char: str) -> str | None:
    """ASCII letters a Latin letter stands for (``é`` -> ``e``, ``ꜰ`` -> ``f``, ``æ`` -> ``ae``).

    Only letters Unicode names LATIN: transliterating other scripts (Cyrillic ``д`` -> ``d``)
    would read ordinary words of those languages as English, which is not obfuscation.
    """
    if ord(char) in _REGIONAL:
        return chr(ord("a") + ord(char) - _REGIONAL_A)
    if not unicodedata.category(char).startswith("L") or "LATIN" not in unicodedata.name(char, ""):
        return None
    ascii_form = anyascii(char)
    if 0 < len(ascii_form) <= 3 and ascii_form.isascii() and ascii_form.isalpha():
        return ascii_form.lower()
    return None


@cache
def translation_table() -> Mapping[int, str]:
    """Steps 2-6 as one ``str.translate`` table (about 6k entries, built in ~0.2 s, once).

    Confusables win over case-folding, so an upper-case look-alike (Greek capital beta) still
    maps to its Latin letter instead of being folded to one that resembles none (small beta).
    """
    confusables = _confusable_targets()
    table: dict[int, str] = {}

    def fold(char: str) -> str:
        if _dropped(char):
            return ""
        if char in LEET:
            return LEET[char]
        if char in confusables:
            return confusables[char]
        if char.isascii():
            lowered = char.lower()
            return LEET.get(lowered, lowered)
        latin = _latin_letters(char)
        if latin is not None:
            return "".join(_as_skeleton_char(letter) for letter in latin)
        return char

    for codepoint in chain.from_iterable(_ASSIGNED_RANGES):
        char = chr(codepoint)
        if (
            char in confusables
            or char in LEET
            or _dropped(char)
            or char.isascii()
            or _latin_letters(char) is not None
        ):
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
        """The source slice that produced ``self.text[start:end]`` (``end > start``).

        The smallest slice covering every character, as a reordered view (:func:`visual_order`)
        need not run forwards.
        """
        if self.starts is None or self.ends is None:
            return start, end
        return min(self.starts[start:end]), max(self.ends[start:end])

    def then(self, inner: Skeleton) -> Skeleton:
        """``inner`` maps into ``self.text``; the result maps it straight to ``self``'s source."""
        if self.starts is None or self.ends is None:
            return inner
        if inner.starts is None or inner.ends is None:
            return Skeleton(inner.text, self.starts, self.ends)
        starts = tuple(self.starts[index] for index in inner.starts)
        ends = tuple(self.ends[index - 1] for index in inner.ends)
        return Skeleton(inner.text, starts, ends)


#: Markup a renderer or browser turns into text or nothing: HTML comments, tags, character
#: references, percent-encoded runs, JSON/JavaScript ``\uXXXX`` escapes (a JSON asset's
#: ``"\u0066ree"`` is ``free`` to every reader). Every repetition is bounded, so the scan
#: stays linear.
_MARKUP: Final = re.compile(
    r"<!--[^>]{0,1000}?-->"
    r"|\\u[0-9A-Fa-f]{4}(?:\\u[0-9A-Fa-f]{4})?"
    r"|</?(?P<tag>[A-Za-z][A-Za-z0-9]{0,15})(?:[\s/][^<>]{0,500})?>"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?"
    r"|(?:%[0-9A-Fa-f]{2})+"
)
#: Tags that break a line when rendered; others (``b``, ``span``) join what surrounds them.
_BLOCK_TAGS: Final = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p"}
    | {"pre", "section", "table", "td", "th", "tr", "ul"}
)
#: Decoding passes: enough for double encoding (``&amp;#101;``), bounded for hostile nesting.
_MARKUP_PASSES: Final = 3


def _decode_one(match: re.Match[str]) -> str:
    found = match.group()
    if found.startswith("<"):
        tag = match.group("tag")
        return " " if tag is not None and tag.lower() in _BLOCK_TAGS else ""
    if found.startswith("&"):
        return html.unescape(found)
    if found.startswith("\\"):
        return _unescape_json(found)
    try:
        return unquote(found, errors="strict")
    except UnicodeDecodeError:  # not UTF-8 underneath: ordinary text such as '20%AB'
        return found


def _unescape_json(escapes: str) -> str:
    """One or two ``\\uXXXX`` escapes (a surrogate pair is one character); a lone surrogate
    cannot be text, so it stays as written."""
    try:
        decoded: str = json.loads(f'"{escapes}"')
        decoded.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        if len(escapes) == 12:  # two escapes that are no pair: each on its own
            return _unescape_json(escapes[:6]) + _unescape_json(escapes[6:])
        return escapes
    return decoded


def _decode_pass(view: Skeleton) -> Skeleton | None:
    """One pass of :data:`_MARKUP` decoding over ``view``; None when nothing changed."""
    text = view.text
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    last = 0
    changed = False
    for match in _MARKUP.finditer(text):
        decoded = _decode_one(match)
        if decoded == match.group():
            continue
        changed = True
        pieces.append(text[last : match.start()])
        starts.extend(range(last, match.start()))
        ends.extend(range(last + 1, match.start() + 1))
        pieces.append(decoded)
        starts.extend([match.start()] * len(decoded))
        ends.extend([match.end()] * len(decoded))
        last = match.end()
    if not changed:
        return None
    pieces.append(text[last:])
    starts.extend(range(last, len(text)))
    ends.extend(range(last + 1, len(text) + 1))
    return view.then(Skeleton("".join(pieces), tuple(starts), tuple(ends)))


def decode_markup(text: str) -> Skeleton:
    """``text`` with HTML entities, tags and percent-encoding decoded, mapped to the source.

    ``fr&#101;e``, ``fr&eacute;e``, ``fr<b></b>ee`` and ``fr%65e`` all read ``free`` (then
    ``frée`` folds in the skeleton), as does ``\\u0066ree``; block tags read as a space. Text
    without ``&``, ``<``, ``%`` or a backslash is returned as is, at no cost.
    """
    view = Skeleton(text)
    if "&" not in text and "<" not in text and "%" not in text and "\\" not in text:
        return view
    for _ in range(_MARKUP_PASSES):
        decoded = _decode_pass(view)
        if decoded is None:
            break
        view = decoded
    return view


_RLO: Final = "\u202e"
_PDF: Final = "\u202c"
#: Embedding and override starts, each closed by one PDF.
_PUSHES: Final = frozenset("\u202a\u202b\u202d\u202e")
#: An isolate's end or a paragraph's end closes every open embedding (UAX #9, X6a and P1).
_CLOSES_ALL: Final = frozenset("\u2069\n\r\u0085\u2029")


def _override_end(text: str, start: int) -> int:
    """Index of the PDF closing the override that opens at ``start`` (or where it must end)."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char in _PUSHES:
            depth += 1
        elif char == _PDF:
            depth -= 1
            if depth == 0:
                return index
        elif char in _CLOSES_ALL:
            return index
    return len(text)


def visual_order(view: Skeleton) -> Skeleton | None:
    """``view`` as displayed when it holds a right-to-left override (U+202E), else None.

    An override shows its letters in reverse, so ``\u202eeerf\u202c`` reads ``free`` on
    screen though ``eerf`` in memory. Each outermost override run is reversed whole: nested
    embeddings inside one are rare enough to read as part of it.
    """
    text = view.text
    if _RLO not in text:
        return None
    order: list[int] = []
    index = 0
    while index < len(text):
        if text[index] != _RLO:
            order.append(index)
            index += 1
            continue
        end = _override_end(text, index)
        order.extend(range(end - 1, index - 1, -1))
        index = end
    reordered = Skeleton("".join(text[i] for i in order), tuple(order), tuple(i + 1 for i in order))
    return view.then(reordered)


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
    "decode_markup",
    "skeleton",
    "skeleton_map",
    "translation_table",
    "visual_order",
]
