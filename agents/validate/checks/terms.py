"""Brand text policy: prohibited terms, required disclaimers, length bounds, language.

Prohibited terms are matched on skeletons (:mod:`agents.policy.text_normalize`), so fullwidth
``Free``, Cyrillic ``fr\\u0435\\u0435``, ``frée``, ``ꜰʀᴇᴇ``, ``fr33``, ``fr€€``, ``fr&#101;e``,
``fr<b></b>ee``, ``fr%65e``, a BiDi override showing ``free``, ``f r e e``, ``fr ee``,
``freee`` all count as ``free``. Word boundaries keep ``freedom`` clean; a term glued inside a
word counts when the word is no dictionary word but is made of the term and dictionary words
(``riskfree``, not ``carefree`` or ``skillshare``: :func:`glued_term`). A negative corpus of
ordinary marketing copy (tests) holds the line against false positives. All terms of a policy
are compiled into one regex, once per check, and the slower offset-tracking skeleton is built
only when something matched, to quote the offending text as written.

Every failure here is the generated text's fault, so it is repairable: its message becomes
feedback for the next generation. Only a request that names no usable language, or a broken
language detector, fails unrepairably.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import groupby
from typing import Any, ClassVar, Final, Protocol

from agents.policy.rules import ISO_639_1, TextPolicy
from agents.policy.text_normalize import (
    SEPARATORS,
    Skeleton,
    caseless,
    char_pattern,
    char_readings,
    decode_markup,
    skeleton,
    skeleton_map,
    visual_order,
)
from agents.validate.checks._base import Check, Subject, result
from agents.validate.checks.text import decode_utf8
from schemas.records import AssetKind, CheckResult, GenerationRequest

_TEXT: Final = frozenset({AssetKind.TEXT})
_TEXT_OR_JSON: Final = frozenset({AssetKind.TEXT, AssetKind.JSON})

_SEP: Final = f"[{SEPARATORS}]"
_SPLIT_WORDS: Final = re.compile(f"{_SEP}+")
#: Letters spaced out by up to this many separators still form a word (``f . r . e . e``);
#: the bound keeps the regex linear on long runs of punctuation.
_MAX_GAP: Final = 3
_SEP_CHAR: Final = re.compile(_SEP)
_SEP_RUN: Final = re.compile(f"{_SEP}{{1,{_MAX_GAP}}}")
#: Between two letters of a word, and between the words of a phrase (possessive: see
#: :func:`_term_regex`).
_GAP: Final = f"{_SEP}{{0,{_MAX_GAP}}}+"
_WORD_GAP: Final = f"{_SEP}*+"
_LETTER: Final = re.compile(r"[^\W\d_]")
#: Hits quoted in a failure message; the count in ``measured`` is always complete.
MAX_QUOTED_HITS: Final = 10


# --- text.prohibited ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TermHit:
    """One occurrence: the policy's term, the text as written, and where (code points)."""

    term: str
    excerpt: str
    start: int | None


@dataclass(frozen=True)
class _TermRegex:
    """One term's regex, split after its first character so terms can share that character."""

    first: str  # the skeleton character the term starts with
    rest: str  # regex for everything after it


def _term_regex(term_skeleton: str, *, repeats: bool = True, glued: bool = False) -> _TermRegex:
    """Regex parts of one term; :meth:`TermMatcher._scan` tests the trailing word boundary.

    Within a word, each pair of letters may be spaced by up to :data:`_MAX_GAP` separators,
    evenly or not (``f r e e``, ``fr ee``, ``f.r-e e``, ``**fr**ee``), and a letter may be
    repeated (``freee``, ``ffree``), unless ``repeats`` is off (a term with digits: ``1000%`` is
    not ``100%``). Words of a phrase are separated by any run of separators,
    or none (``buynow``, ``riskfree`` for ``risk-free``). Every quantifier is possessive: a gap
    is always followed by a letter, and a repeat only where the next letter cannot be read the
    same way (``kill``'s ``i`` and ``ll`` both accept ``1``), so giving back never helps and
    the scan stays linear.

    ``glued`` is the form looked for inside words (``riskfree``): letters and words written
    together, repeats bounded, as such a match may start anywhere.
    """
    gap, word_gap = ("", "") if glued else (_GAP, _WORD_GAP)
    more = f"{{0,{_MAX_WORD}}}+" if glued else "*+"
    words = [word for word in _SPLIT_WORDS.split(term_skeleton) if word]
    runs = [[(char, len(list(group))) for char, group in groupby(word)] for word in words]
    following = [*[char for word in runs for char, _ in word][1:], ""]
    parts: list[str] = []
    position = 0
    for word in runs:
        pieces: list[str] = []
        for char, count in word:
            letter = char_pattern(char)
            piece = letter + f"(?:{gap}{letter})" * (count - 1)
            after = set(char_readings(following[position])) if following[position] else set()
            if not repeats:
                pass
            elif not set(char_readings(char)) & after:
                piece += letter + more
            elif char not in after:  # 'kiill': repeat the i itself, never a 1 the ll may need
                piece += re.escape(char) + more
            pieces.append(piece)
            position += 1
        parts.append(gap.join(pieces))
    body = word_gap.join(parts)
    first = words[0][0]
    return _TermRegex(first, body.removeprefix(char_pattern(first)))


def _compile(
    terms: Sequence[tuple[int, _TermRegex]], *, at_word_start: bool = True
) -> re.Pattern[str] | None:
    """One regex for all terms: ``t<index>`` groups name the term that matched.

    Terms starting with a letter or digit (nearly all) sit behind one lookahead for their
    possible first characters and, ``at_word_start``, one word-boundary test, then branch on
    the first character, so most positions of a text are rejected in a single step: 20 terms
    scan 1 KB in ~50 us, against ~650 us for a flat alternation.
    """
    by_first: dict[str, list[str]] = {}
    loose: list[str] = []
    for index, term in terms:
        branch = f"(?P<t{index}>{term.rest})"
        if term.first.isalnum():
            by_first.setdefault(term.first, []).append(branch)
        else:
            loose.append(char_pattern(term.first) + branch)
    alternatives = list(loose)
    if by_first:
        starts = "".join(sorted({re.escape(c) for first in by_first for c in char_readings(first)}))
        branches = "|".join(
            f"{char_pattern(first)}(?:{'|'.join(rests)})" for first, rests in by_first.items()
        )
        boundary = r"(?<![^\W_])" if at_word_start else ""
        alternatives.insert(0, f"(?=[{starts}]){boundary}(?:{branches})")
    return re.compile("|".join(alternatives)) if alternatives else None


def _is_alnum_at(text: str, index: int) -> bool:
    return 0 <= index < len(text) and text[index].isalnum()


def _single_char_at(text: str, index: int) -> bool:
    """A letter or digit standing alone, like each letter of ``d o m``."""
    return (
        _is_alnum_at(text, index)
        and not _is_alnum_at(text, index - 1)
        and not _is_alnum_at(text, index + 1)
    )


def _continues_spaced_out(text: str, start: int, end: int) -> bool:
    """``f r e e`` inside ``f r e e d o m`` or ``c a r e f r e e`` is part of another word."""
    if _single_char_at(text, end - 1):
        gap = _SEP_RUN.match(text, end)
        if gap is not None and _single_char_at(text, gap.end()):
            return True
    if _single_char_at(text, start):
        before = start
        while before > 0 and start - before < _MAX_GAP and _SEP_CHAR.match(text, before - 1):
            before -= 1
        if before < start and _single_char_at(text, before - 1):
            return True
    return False


#: Digits and what separates them in numbers: read as leetspeak, a price is no word.
_NUMBER: Final = re.compile(r"[\d.,'\s]+")
#: ``he'll`` is not ``hell`` with a gap, nor ``can't`` ``cant``.
_CONTRACTION: Final = re.compile(r"[^\W_]+['\u2019\u02bc](?:s|t|d|m|ll|re|ve)")

#: Inflections stripped to find a word in the dictionary (``carefreeness`` -> ``carefree``).
_SUFFIXES: Final = ("s", "es", "ed", "d", "ing", "ly", "ness", "er", "ers", "est", "ment")
#: A part glued to a term must be a dictionary word this long to make a compound of it.
_MIN_PART: Final = 3
#: No dictionary word is longer; a longer token cannot be a compound of one (keeps scans linear).
_MAX_WORD: Final = 40
#: The longest word searched for a glued term: a prefix word, the term, a suffix word.
_MAX_COMPOUND: Final = 3 * _MAX_WORD
_TOKEN: Final = re.compile(r"[^\W_]+")


@cache
def english_words() -> frozenset[str]:
    """pyspellchecker's English word list (~160k words, ~0.4 s to load once)."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en", distance=1).word_frequency.keys())


def _is_word(token: str) -> bool:
    """A dictionary word, possibly inflected; ``1`` in a skeleton may be ``i`` or ``l``."""
    if len(token) > _MAX_WORD:
        return False
    words = english_words()
    spellings = {token.replace("1", "i"), token.replace("1", "l")} if "1" in token else {token}
    for spelling in spellings:
        if spelling in words:
            return True
        for suffix in _SUFFIXES:
            stem = spelling.removesuffix(suffix)
            if stem != spelling and len(stem) >= _MIN_PART and stem in words:
                return True
    return False


def glued_term(token: str, start: int, end: int) -> bool:
    """Whether ``token[start:end]``, a term glued inside ``token``, counts as the term.

    The rule: a term glued to other words (``riskfree``, ``glutenfree``, ``freeshipping``) is
    the term, unless the whole is itself a dictionary word (``carefree``, ``freedom``,
    ``skillet``, ``carefreeness``). Letters that are no word of their own around the term
    (``skillshare``: ``s`` + ``kill`` + ``share``) make another word, not a compound.
    """
    if _is_word(token):
        return False
    parts = [part for part in (token[:start], token[end:]) if part]
    return all(len(part) >= _MIN_PART and _is_word(part) for part in parts)


def _word_start(text: str, index: int) -> int:
    """Where the run of letters and digits holding ``text[index]`` starts (looking back at
    most :data:`_MAX_COMPOUND` characters: a longer word is never searched)."""
    start = index
    while start > 0 and text[start - 1].isalnum() and index - start <= _MAX_COMPOUND:
        start -= 1
    return start


class TermMatcher:
    """Finds every policy term in a text; compiles all terms into one regex at construction.

    A text is read as written, after decoding markup (:func:`.decode_markup`), and, when it
    holds a BiDi override, also as displayed (:func:`.visual_order`); a hit in either counts.
    """

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = tuple(terms)
        # Longest first, so a phrase wins over a term it starts with ('free shipping', 'free').
        order = sorted(range(len(self.terms)), key=lambda i: -len(skeleton(self.terms[i])))
        regexes: list[tuple[int, _TermRegex]] = []
        glued: list[tuple[int, _TermRegex]] = []
        self._skeletons: dict[int, str] = {}
        for index in order:
            term_skeleton = skeleton(self.terms[index])
            if not any(char.isalnum() for char in term_skeleton):
                raise ValueError(f"prohibited term {self.terms[index]!r} has no letters or digits")
            self._skeletons[index] = term_skeleton
            numeric = any(char.isdigit() for char in self.terms[index])
            regexes.append((index, _term_regex(term_skeleton, repeats=not numeric)))
            glued.append((index, _term_regex(term_skeleton, repeats=not numeric, glued=True)))
        self._pattern = _compile(regexes)
        self._glued = _compile(glued, at_word_start=False)
        if self._pattern is not None:
            english_words()  # load now, at policy load, not in the first check

    def _is_hit(self, text: str, index: int, start: int, end: int) -> bool:
        """A match of the word-start regex is a hit when it ends a word and is not part of a
        longer spaced-out word or a contraction."""
        term = self._skeletons[index]
        if term[-1].isalnum() and _is_alnum_at(text, end):
            return False
        return not (
            _continues_spaced_out(text, start, end)
            or _CONTRACTION.fullmatch(text, start, end) is not None
        )

    def _scan(self, text: str) -> list[tuple[int, int, int]]:
        """(term index, start, end) of each hit in a skeleton, in order, none overlapping."""
        if self._pattern is None or self._glued is None:
            return []
        hits: list[tuple[int, int, int]] = []
        position = 0
        while (match := self._pattern.search(text, position)) is not None:
            index = int(str(match.lastgroup)[1:])
            start, end = match.span()
            if self._is_hit(text, index, start, end):
                hits.append((index, start, end))
                position = max(end, start + 1)
            else:
                position = start + 1
        return sorted(hits + self._scan_glued(text, hits))

    def _scan_glued(
        self, text: str, hits: list[tuple[int, int, int]]
    ) -> list[tuple[int, int, int]]:
        """Terms glued inside a word (``riskfree``) that :func:`glued_term` counts.

        One pass finds the words holding a candidate; only those outside the dictionary (nearly
        none in ordinary copy) and short enough to be two or three words are searched further,
        so the cost stays linear.
        """
        assert self._glued is not None
        glued: list[tuple[int, int, int]] = []
        token_end = -1
        for candidate in self._glued.finditer(text):
            if candidate.start() < token_end:
                continue  # this word was examined already
            token = _TOKEN.match(text, _word_start(text, candidate.start()))
            assert token is not None
            token_start, token_end = token.span()
            word = token.group()
            if len(word) > _MAX_COMPOUND or _is_word(word):
                continue
            if any(start < token_end and token_start < end for _, start, end in hits):
                continue
            position = token_start
            while (match := self._glued.search(text, position, token_end)) is not None:
                index = int(str(match.lastgroup)[1:])
                start, end = match.span()
                whole = start == token_start and end == token_end  # the main scan's business
                if not whole and glued_term(word, start - token_start, end - token_start):
                    glued.append((index, start, end))
                    position = end
                else:
                    position = start + 1
        return glued

    def _find_in(self, source: str, view: Skeleton) -> list[TermHit]:
        if not self._scan(skeleton(view.text)):
            return []
        mapped = view.then(skeleton_map(view.text))
        hits = self._scan(mapped.text)
        if not hits:  # cluster-wise folding diverged (exotic compositions): quote the skeleton
            folded = skeleton(view.text)
            return [
                TermHit(self.terms[index], folded[start:end], None)
                for index, start, end in self._scan(folded)
            ]
        found = [
            TermHit(self.terms[index], source[slice(*span)], span[0])
            for index, start, end in hits
            for span in (mapped.source_span(start, end),)
        ]
        return [hit for hit in found if not self._just_a_number(hit)]

    def _just_a_number(self, hit: TermHit) -> bool:
        """``45.5`` read as ``ass`` is a number, unless the term itself has digits (``24/7``)."""
        return _NUMBER.fullmatch(hit.excerpt) is not None and not any(
            char.isdigit() for char in hit.term
        )

    def find(self, text: str) -> list[TermHit]:
        """Every hit, quoting the source text; fast when there is none (the usual case)."""
        decoded = decode_markup(text)
        views = [decoded]
        if (displayed := visual_order(decoded)) is not None:
            views.append(displayed)
        found: dict[tuple[str, str, int | None], TermHit] = {}
        for view in views:
            for hit in self._find_in(text, view):
                found.setdefault((hit.term, hit.excerpt, hit.start), hit)
        return sorted(found.values(), key=lambda hit: -1 if hit.start is None else hit.start)


def _describe(hit: TermHit) -> str:
    where = "" if hit.start is None else f" at char {hit.start}"
    return f"{hit.term!r} as {hit.excerpt!r}{where}"


@dataclass(frozen=True)
class TextProhibited:
    """``text.prohibited``: none of the terms appears, however it is spelled or disguised.

    JSON assets are scanned as raw text, keys and punctuation included.
    """

    terms: tuple[str, ...]
    matcher: TermMatcher = field(init=False, repr=False, compare=False)
    code: ClassVar[str] = "text.prohibited"
    kinds: ClassVar[frozenset[AssetKind]] = _TEXT_OR_JSON

    def __post_init__(self) -> None:
        object.__setattr__(self, "matcher", TermMatcher(self.terms))

    def __call__(self, subject: Subject) -> CheckResult:
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return result(self.code, False, str(decoded.problem))
        hits = self.matcher.find(decoded.text)
        if not hits:
            return result(self.code, True, "no prohibited terms", "0")
        quoted = ", ".join(_describe(hit) for hit in hits[:MAX_QUOTED_HITS])
        more = len(hits) - MAX_QUOTED_HITS
        suffix = f" and {more} more" if more > 0 else ""
        return result(self.code, False, f"found {quoted}{suffix}", str(len(hits)))


# --- text.required -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextRequired:
    """``text.required``: every disclaimer appears, ignoring case, width and whitespace."""

    phrases: tuple[str, ...]
    code: ClassVar[str] = "text.required"
    kinds: ClassVar[frozenset[AssetKind]] = _TEXT

    def __call__(self, subject: Subject) -> CheckResult:
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return result(self.code, False, str(decoded.problem))
        text = caseless(decoded.text)
        missing = [phrase for phrase in self.phrases if caseless(phrase) not in text]
        if missing:
            listed = ", ".join(repr(phrase) for phrase in missing)
            return result(self.code, False, f"missing {listed}", str(len(missing)))
        return result(self.code, True, f"all {len(self.phrases)} required texts present", "0")


# --- text.length -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLength:
    """``text.length``: between the policy's ``min_chars`` and ``max_chars`` code points."""

    min_chars: int | None = None
    max_chars: int | None = None
    code: ClassVar[str] = "text.length"
    kinds: ClassVar[frozenset[AssetKind]] = _TEXT

    def __call__(self, subject: Subject) -> CheckResult:
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return result(self.code, False, str(decoded.problem))
        length = len(decoded.text)
        measured = str(length)
        if self.min_chars is not None and length < self.min_chars:
            short = self.min_chars - length
            message = f"{length} chars is below min_chars {self.min_chars} by {short}"
            return result(self.code, False, message, measured)
        if self.max_chars is not None and length > self.max_chars:
            over = length - self.max_chars
            message = f"{length} chars exceeds max_chars {self.max_chars} by {over}"
            return result(self.code, False, message, measured)
        low = "0" if self.min_chars is None else str(self.min_chars)
        high = "any" if self.max_chars is None else str(self.max_chars)
        return result(self.code, True, f"{length} chars within {low}..{high}", measured)


# --- text.language -----------------------------------------------------------------------------


class LanguageDetector(Protocol):
    """Names the language of a text: (ISO 639-1 code, confidence 0..1), or None if it cannot."""

    def detect(self, text: str) -> tuple[str, float] | None: ...


@cache
def _py3langid_identifier() -> Any:
    """The bundled py3langid model (no network), loaded once, with normalised probabilities."""
    try:
        from py3langid.langid import (  # type: ignore[import-untyped]
            MODEL_FILE,
            LanguageIdentifier,
        )
    except ImportError:
        return None
    # 0.4 loads an .npz model; 0.3 named the same loader after its pickled model.
    load = getattr(LanguageIdentifier, "from_model_file", None)
    if load is None:
        load = LanguageIdentifier.from_pickled_model
    return load(MODEL_FILE, norm_probs=True)


class Py3LangidDetector:
    """:class:`LanguageDetector` on py3langid; the model (~0.5 s to load) loads on first use."""

    #: py3langid's labels for 'no linguistic content' and 'undetermined'.
    NO_LANGUAGE: ClassVar[frozenset[str]] = frozenset({"zxx", "und"})

    def detect(self, text: str) -> tuple[str, float] | None:
        """None for text without letters, or when py3langid is not installed."""
        if _LETTER.search(text) is None:
            return None
        identifier = _py3langid_identifier()
        if identifier is None:
            return None
        language, confidence = identifier.classify(text)
        if language in self.NO_LANGUAGE:
            return None
        return str(language), float(confidence)


#: The shared default detector; it holds no state besides the lazily loaded model.
PY3LANGID: Final = Py3LangidDetector()


def default_detector() -> LanguageDetector | None:
    """The py3langid detector when the package is installed, else None (language unchecked)."""
    return PY3LANGID if importlib.util.find_spec("py3langid") is not None else None


def primary_subtag(tag: str) -> str:
    """``"en-US"``, ``"EN_us"`` -> ``"en"``: the language part of a BCP 47 tag."""
    return tag.strip().lower().replace("_", "-").split("-", 1)[0]


def requested_language(request: GenerationRequest) -> str | None:
    """Primary subtag of ``constraints.language``, None when unset or blank."""
    return primary_subtag(request.constraints.language or "") or None


@dataclass(frozen=True)
class TextLanguage:
    """``text.language``: the text is in the policy's language, else the request's.

    Without a detector (or when it cannot tell, e.g. no letters) the check passes and says the
    language was not checked: an unknown is not evidence of a wrong language.
    """

    language: str | None = None
    min_confidence: float = 0.5
    detector: LanguageDetector | None = field(default=PY3LANGID, compare=False)
    code: ClassVar[str] = "text.language"
    kinds: ClassVar[frozenset[AssetKind]] = _TEXT

    def __post_init__(self) -> None:
        if self.language is not None:
            language = self.language.strip().lower()
            if not ISO_639_1.match(language):
                raise ValueError(f"language {self.language!r} is not an ISO 639-1 code")
            object.__setattr__(self, "language", language)

    def __call__(self, subject: Subject) -> CheckResult:
        expected = self.language or requested_language(subject.request)
        if expected is None:
            return result(self.code, True, "no language constraint")
        if not ISO_639_1.match(expected):
            return result(
                self.code,
                False,
                f"constraints.language {subject.request.constraints.language!r} does not start "
                "with an ISO 639-1 code such as 'en'",
                repairable=False,
            )
        if self.detector is None:
            return result(
                self.code, True, f"language not checked: no detector (expected {expected})"
            )
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return result(self.code, False, str(decoded.problem))
        try:
            detected = self.detector.detect(decoded.text)
        except Exception as exc:  # a broken detector is not the text's fault; a person looks
            return result(
                self.code,
                False,
                f"language detector failed: {type(exc).__name__}: {exc}",
                repairable=False,
            )
        if detected is None:
            return result(
                self.code,
                True,
                f"language not checked: the detector could not tell (expected {expected})",
            )
        language, confidence = detected
        language = primary_subtag(language)
        measured = f"{language} {confidence:.2f}"
        if language != expected:
            message = f"detected {language} (confidence {confidence:.2f}), expected {expected}"
            return result(self.code, False, message, measured)
        if confidence < self.min_confidence:
            message = (
                f"{language} detected with confidence {confidence:.2f}, below "
                f"min_language_confidence {self.min_confidence}"
            )
            return result(self.code, False, message, measured)
        return result(
            self.code, True, f"language {language} (confidence {confidence:.2f})", measured
        )


def text_policy_checks(
    policy: TextPolicy, detector: LanguageDetector | None = PY3LANGID
) -> tuple[Check, ...]:
    """The checks the policy asks for; each regex is compiled here, once.

    ``text.language`` is always included: without a policy language it enforces the request's
    ``constraints.language`` and passes when there is none.
    """
    checks: list[Check] = []
    if policy.prohibited:
        checks.append(TextProhibited(tuple(policy.prohibited)))
    if policy.required:
        checks.append(TextRequired(tuple(policy.required)))
    if policy.min_chars is not None or policy.max_chars is not None:
        checks.append(TextLength(policy.min_chars, policy.max_chars))
    checks.append(TextLanguage(policy.language, policy.min_language_confidence, detector))
    return tuple(checks)


__all__ = [
    "MAX_QUOTED_HITS",
    "PY3LANGID",
    "LanguageDetector",
    "Py3LangidDetector",
    "TermHit",
    "TermMatcher",
    "TextLanguage",
    "TextLength",
    "TextPolicy",
    "TextProhibited",
    "TextRequired",
    "default_detector",
    "english_words",
    "glued_term",
    "primary_subtag",
    "requested_language",
    "text_policy_checks",
]
