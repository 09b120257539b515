"""Brand text policy: obfuscated prohibited terms, disclaimers, length bounds and language."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.policy.rules import TextPolicy
from agents.validate.checks._base import Subject
from agents.validate.checks.terms import (
    MAX_QUOTED_HITS,
    PY3LANGID,
    Py3LangidDetector,
    TermMatcher,
    TextLanguage,
    TextLength,
    TextProhibited,
    TextRequired,
    default_detector,
    glued_term,
    requested_language,
    text_policy_checks,
)
from schemas.records import AssetKind, Constraints, GenerationRequest

ENGLISH = (
    "Our new trail shoes grip every rock and root. The cushioned sole keeps you comfortable on "
    "long runs, and the breathable upper dries quickly after a river crossing."
)
FRENCH = (
    "Nos nouvelles chaussures de trail accrochent chaque rocher et chaque racine. La semelle "
    "amortie vous garde à l'aise sur les longues sorties, et la tige respirante sèche vite "
    "après une traversée de rivière."
)
GERMAN = (
    "Unsere neuen Trailschuhe greifen auf jedem Felsen und jeder Wurzel. Die gedämpfte Sohle "
    "hält dich auf langen Läufen bequem, und das atmungsaktive Obermaterial trocknet nach einer "
    "Flussdurchquerung schnell."
)


def subject(
    text: str | bytes, kind: AssetKind = AssetKind.TEXT, *, language: str | None = None
) -> Subject:
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=kind,
        prompt_template="a tagline",
        constraints=Constraints(language=language),
    )
    data = text.encode() if isinstance(text, str) else text
    return Subject(request=request, data=data, media_type="text/plain")


# --- text.prohibited: the corpus ---------------------------------------------------------------

TERMS = ("free", "buy now", "guaranteed", "kill", "risk-free", "100% natural")

#: (text, term found, excerpt quoted as written)
POSITIVES = [
    ("Get it free today", "free", "free"),
    ("Get it FREE today", "free", "FREE"),
    ("Free shipping", "free", "Free"),
    ("Get it \uff26\uff52\uff45\uff45 today", "free", "\uff26\uff52\uff45\uff45"),
    ("Get it fr\u0435\u0435 today", "free", "fr\u0435\u0435"),  # Cyrillic ie
    ("Get it f r e e today", "free", "f r e e"),
    ("Get it f.r.e.e today", "free", "f.r.e.e"),
    ("Get it f-r-e-e today", "free", "f-r-e-e"),
    ("Get it f_r_e_e today", "free", "f_r_e_e"),
    ("Get it f . r . e . e today", "free", "f . r . e . e"),
    ("Get it fr33 today", "free", "fr33"),
    ("Get it FR33!", "free", "FR33"),
    ("Get it fr\u200bee today", "free", "fr\u200bee"),
    ("Get it fr\u00adee today", "free", "fr\u00adee"),  # soft hyphen
    ("Get it \u202efree\u202c today", "free", "free"),  # BiDi controls around the word
    ("Get it f\u0332r\u0332e\u0332e\u0332 today", "free", "f\u0332r\u0332e\u0332e\u0332"),
    ("(free)", "free", "free"),
    ("#free", "free", "free"),
    ("free_stuff", "free", "free"),
    ("end of text: free", "free", "free"),
    ("Get it f r e e stuff", "free", "f r e e"),  # spaced word followed by a real word
    ("Buy now!", "buy now", "Buy now"),
    ("BUY    NOW", "buy now", "BUY    NOW"),
    ("buy\nnow", "buy now", "buy\nnow"),
    ("buy\t \u00a0now", "buy now", "buy\t \u00a0now"),
    ("b u y n o w", "buy now", "b u y n o w"),
    ("Results GUARANTEED.", "guaranteed", "GUARANTEED"),
    ("gu4r4nt33d", "guaranteed", "gu4r4nt33d"),
    ("k1ll", "kill", "k1ll"),
    ("ki11", "kill", "ki11"),
    ("k111", "kill", "k111"),
    ("K\u04c0LL", "kill", "K\u04c0LL"),  # Cyrillic palochka as capital I
    ("risk-free trial", "risk-free", "risk-free"),
    ("risk free trial", "risk-free", "risk free"),
    ("100% natural", "100% natural", "100% natural"),
    ("l00% NATURAL", "100% natural", "l00% NATURAL"),
    # issue 12 item 11: each of these passed before
    ("Get it fr\u00e9e today", "free", "fr\u00e9e"),  # precomposed accent
    ("Get it fre\u0301e today", "free", "fre\u0301e"),  # combining accent
    ("Get it \ua730\u0280\u1d07\u1d07 today", "free", "\ua730\u0280\u1d07\u1d07"),  # small caps
    ("Get it \u0192ree today", "free", "\u0192ree"),  # f with hook
    (
        "Get it \U0001f1eb\U0001f1f7\U0001f1ea\U0001f1ea today",
        "free",
        "\U0001f1eb\U0001f1f7\U0001f1ea\U0001f1ea",
    ),
    ("Get it fr\u20ac\u20ac today", "free", "fr\u20ac\u20ac"),
    ("FR\u20ac\u20ac", "free", "FR\u20ac\u20ac"),
    ("Results 9uaranteed", "guaranteed", "9uaranteed"),
    ("Get it fr ee today", "free", "fr ee"),  # uneven gaps
    ("Get it f.r-e e today", "free", "f.r-e e"),  # mixed gaps
    ("Get it fr-\nee today", "free", "fr-\nee"),  # hyphenated line break
    ("F. Ree runs the shop", "free", "F. Ree"),  # the price of catching uneven gaps
    ("Get it fr&#101;e today", "free", "fr&#101;e"),  # HTML entities
    ("Get it fr&#x65;e today", "free", "fr&#x65;e"),
    ("Get it fr&eacute;e today", "free", "fr&eacute;e"),
    ("Get it fr&amp;#101;e today", "free", "fr&amp;#101;e"),  # encoded twice
    ("Get it fr<b></b>ee today", "free", "fr<b></b>ee"),  # markup inside the word
    ("Get it <i>fr</i>ee today", "free", "fr</i>ee"),
    ("Get it fr<!-- x -->ee today", "free", "fr<!-- x -->ee"),
    ("Get it **fr**ee today", "free", "fr**ee"),  # Markdown
    ("Get it \u202eeerf\u202c today", "free", "eerf"),  # displayed as 'free'
    ("Get it \u202eeerf today", "free", "eerf"),  # the override runs to the end
    ("Get it freee today", "free", "freee"),  # repeated letters
    ("Get it FFRREEEE today", "free", "FFRREEEE"),
    ("kiill", "kill", "kiill"),
    ("Get it fr%65e today", "free", "fr%65e"),  # percent-encoding
    ("Get it fr%C3%A9e today", "free", "fr%C3%A9e"),  # ... of UTF-8
    ("Get it \\u0066ree today", "free", "\\u0066ree"),  # JSON/JavaScript escapes
    ("riskfree trial", "risk-free", "riskfree"),  # a phrase glued together
    ("buynow", "buy now", "buynow"),
]

#: (text) none of TERMS may be found in
NEGATIVES = [
    "freedom",
    "carefree",
    "Freedom of movement",
    "a carefree summer",
    "freeze",
    "f r e e d o m",
    "c a r e f r e e",
    "f.r.e.e.d.o.m",
    "fr ee dom".replace(" ", ""),  # 'freedom', glued back
    "buy nowhere",
    "skill",
    "killer",
    "sk i ll",
    "fall",
    "fill",
    "1000% natural",
    "R&D, Q&A, AT&T, 50%off",
    "\u202emodeerf\u202c",  # displays 'freedom'
    "<b>free</b>dom",  # tags join: 'freedom'
    "",
]


@pytest.mark.parametrize(("text", "term", "excerpt"), POSITIVES)
def test_obfuscated_terms_are_found(text: str, term: str, excerpt: str) -> None:
    hits = TermMatcher(TERMS).find(text)
    assert [(hit.term, hit.excerpt) for hit in hits] == [(term, excerpt)]
    assert hits[0].start == text.index(excerpt)


@pytest.mark.parametrize("text", NEGATIVES)
def test_innocent_words_are_not_found(text: str) -> None:
    assert TermMatcher(TERMS).find(text) == []


def test_prohibited_failure_names_term_excerpt_and_count() -> None:
    check = TextProhibited(TERMS)
    result = check(subject("Fr33 shipping, buy  now: results guaranteed, free returns."))
    assert result.code == "text.prohibited"
    assert not result.passed
    assert result.repairable
    assert result.measured == "4"
    assert result.message == (
        "found 'free' as 'Fr33' at char 0, 'buy now' as 'buy  now' at char 15, "
        "'guaranteed' as 'guaranteed' at char 33, 'free' as 'free' at char 45"
    )


def test_invisible_characters_are_visible_in_the_message() -> None:
    result = TextProhibited(("free",))(subject("fr\u200bee"))
    assert "'free' as 'fr\\u200bee'" in result.message


def test_clean_text_passes() -> None:
    result = TextProhibited(TERMS)(subject(ENGLISH))
    assert result.passed
    assert not result.repairable
    assert result.measured == "0"
    assert result.message == "no prohibited terms"


def test_a_phrase_wins_over_the_term_it_starts_with() -> None:
    hits = TermMatcher(("free", "free shipping")).find("Free  shipping and free returns")
    assert [(hit.term, hit.excerpt) for hit in hits] == [
        ("free shipping", "Free  shipping"),
        ("free", "free"),
    ]


def test_many_hits_are_counted_but_quoted_up_to_a_limit() -> None:
    result = TextProhibited(("free",))(subject(" ".join(["free"] * (MAX_QUOTED_HITS + 3))))
    assert result.measured == str(MAX_QUOTED_HITS + 3)
    assert result.message.endswith(" and 3 more")
    assert result.message.count("'free' as") == MAX_QUOTED_HITS


def test_json_assets_are_scanned_as_raw_text() -> None:
    check = TextProhibited(("free",))
    assert check.kinds == frozenset({AssetKind.TEXT, AssetKind.JSON})
    document = json.dumps({"headline": "Trail shoes", "badge": "FR33 shipping"})
    result = check(subject(document, AssetKind.JSON))
    assert not result.passed
    assert "'free' as 'FR33'" in result.message
    assert check(subject(json.dumps({"freedom": True}), AssetKind.JSON)).passed
    escaped = check(subject('{"badge": "\\u0066r\\u0065e shipping"}', AssetKind.JSON))
    assert not escaped.passed
    assert "'free' as '\\\\u0066r\\\\u0065e'" in escaped.message


def test_invalid_utf8_is_a_repairable_failure() -> None:
    result = TextProhibited(("free",))(subject("free café".encode("latin-1")))
    assert not result.passed
    assert result.repairable
    assert result.message.startswith("not valid UTF-8")


def test_terms_are_compiled_once_per_check(monkeypatch: pytest.MonkeyPatch) -> None:
    check = TextProhibited(("free", "buy now"))

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(re, "compile", no_compiling)
    assert not check(subject("FREE")).passed
    assert check(subject("nothing to see")).passed


def test_long_separator_runs_stay_fast() -> None:
    hostile = ("f" + " " * 50) * 200 + "-" * 5000
    assert TermMatcher(TERMS).find(hostile) == []


def test_hostile_repeats_and_markup_stay_linear() -> None:
    """Repeats, gaps and markup decoding are possessive or bounded: no backtracking blow-up."""
    matcher = TermMatcher((*TERMS, "eee", "e e e", "aaa bbb"))
    hostile = [
        "e" * 50_000 + "x",
        "e " * 25_000 + "x",
        "e." * 25_000,
        "a" * 20_000 + " " * 20_000 + "b" * 20_000 + "x",
        "&" * 20_000 + "&#1" * 10_000,
        "<b" * 20_000 + "%6" * 20_000,
        "\u202e" * 20_000 + "free",
    ]
    started = time.perf_counter()
    for text in hostile:
        matcher.find(text)
    assert time.perf_counter() - started < 5  # each takes milliseconds; a blow-up takes hours


#: Prohibited terms the ordinary corpus must not trip, short ones included.
CORPUS_TERMS = (*TERMS, "hell", "cheap", "cure", "miracle", "act now", "click here", "win", "cant")
ORDINARY_COPY = [
    line
    for line in (Path(__file__).parent / "data" / "ordinary_copy.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def test_ordinary_marketing_copy_has_no_false_positives() -> None:
    assert len(ORDINARY_COPY) > 250
    matcher = TermMatcher(CORPUS_TERMS)
    flagged = {line: matcher.find(line) for line in ORDINARY_COPY}
    assert {line: hits for line, hits in flagged.items() if hits} == {}
    assert matcher.find("\n".join(ORDINARY_COPY)) == []


def test_the_corpus_would_be_caught_once_a_term_is_slipped_in() -> None:
    """The corpus test is not vacuous: the same lines fail with an obfuscated term added."""
    matcher = TermMatcher(CORPUS_TERMS)
    for line in ORDINARY_COPY[:50]:
        hits = matcher.find(line + " Get it fr&#101;e!")
        assert [(hit.term, hit.excerpt) for hit in hits] == [("free", "fr&#101;e")], line


@pytest.mark.parametrize(
    ("text", "excerpt"),
    [
        ("riskfree", "free"),
        ("Hasslefree returns", "free"),
        ("glutenfree bread", "free"),
        ("freeshipping today", "free"),
        ("worryfr33 delivery", "fr33"),
        ("taxfreee", "freee"),
    ],
)
def test_a_term_glued_to_another_word_is_found(text: str, excerpt: str) -> None:
    hits = TermMatcher(("free",)).find(text)
    assert [(hit.term, hit.excerpt) for hit in hits] == [("free", excerpt)]
    assert hits[0].start == text.index(excerpt)


@pytest.mark.parametrize(
    "text",
    [
        "carefree",  # a dictionary word
        "carefreeness",  # ... inflected
        "freedom",
        "freestyle",
        "freeway",
        "freelance",
        "Freeman",
        "freepik",  # 'pik' is no word: another word, not free + something
        "ofree",  # one letter is no word
        "fr33dom",
        "\u0192reedom",
    ],
)
def test_ordinary_words_holding_a_term_are_not_compounds(text: str) -> None:
    assert TermMatcher(("free",)).find(text) == []


@pytest.mark.parametrize(
    ("word", "start", "end", "glued"),
    [
        ("riskfree", 4, 8, True),
        ("carefree", 4, 8, False),
        ("skillshare", 1, 5, False),
        ("killswitch", 0, 4, True),
        ("freeshipping", 0, 4, True),
        ("freeshippingfree", 12, 16, False),  # 'freeshipping' is no dictionary word
    ],
)
def test_glued_term_rule(word: str, start: int, end: int, glued: bool) -> None:
    assert glued_term(word, start, end) is glued


@pytest.mark.parametrize("text", ["455", "45.5", "4.55", "4 55", "1,455.50"])
def test_numbers_are_not_leetspeak_words(text: str) -> None:
    assert TermMatcher(("ass", "free")).find(text) == []
    assert [hit.excerpt for hit in TermMatcher(("ass",)).find("a55 4ss")] == ["a55", "4ss"]


def test_a_numeric_term_still_matches_numbers() -> None:
    assert [hit.excerpt for hit in TermMatcher(("24/7",)).find("open 24/7")] == ["24/7"]


@pytest.mark.parametrize(
    "text", ["he'll", "He\u2019ll be there", "she'll", "can't", "we're", "it's"]
)
def test_contractions_are_not_spaced_out_terms(text: str) -> None:
    assert TermMatcher(("hell", "cant", "were", "its")).find(text) == []


def test_spaced_out_term_without_apostrophe_contraction_is_found() -> None:
    hits = TermMatcher(("hell",)).find("h'ell and he'l'l")
    assert [hit.excerpt for hit in hits] == ["h'ell", "he'l'l"]


def test_a_bidi_override_is_read_both_as_stored_and_as_displayed() -> None:
    text = "free \u202eeerf\u202c and \u202efree\u202c"
    hits = TermMatcher(("free",)).find(text)
    assert [(hit.excerpt, hit.start) for hit in hits] == [
        ("free", 0),
        ("eerf", 6),
        ("free", 17),
    ]


# --- text.required -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Great shoes. Terms apply.",
        "Great shoes. TERMS APPLY.",
        "Great shoes. terms\n   apply.",
        "Great shoes. Terms\u00a0apply.",
        "Great shoes. \uff34erms apply.",  # fullwidth T
    ],
)
def test_required_disclaimer_found_despite_case_and_whitespace(text: str) -> None:
    result = TextRequired(("Terms  apply.",))(subject(text))
    assert result.code == "text.required"
    assert result.passed
    assert result.measured == "0"


@pytest.mark.parametrize(
    "text",
    ["Great shoes.", "Great shoes. Terms may apply.", "Great shoes. Termsapply."],
)
def test_missing_disclaimer_fails(text: str) -> None:
    result = TextRequired(("Terms apply.", "Great shoes"))(subject(text))
    assert not result.passed
    assert result.repairable
    assert result.measured == "1"
    assert result.message == "missing 'Terms apply.'"


def test_every_missing_disclaimer_is_named() -> None:
    result = TextRequired(("Terms apply.", "While stocks last."))(subject("Buy shoes."))
    assert result.measured == "2"
    assert result.message == "missing 'Terms apply.', 'While stocks last.'"


# --- text.length -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "passed", "message"),
    [
        ("abc", False, "3 chars is below min_chars 5 by 2"),
        ("abcde", True, "5 chars within 5..10"),
        ("äöüßéèêëïî", True, "10 chars within 5..10"),  # code points, not bytes
        ("abcdefghijk", False, "11 chars exceeds max_chars 10 by 1"),
    ],
)
def test_length_bounds(text: str, passed: bool, message: str) -> None:
    result = TextLength(5, 10)(subject(text))
    assert result.code == "text.length"
    assert result.passed is passed
    assert result.repairable is not passed
    assert result.message == message
    assert result.measured == str(len(text))


def test_one_sided_length_bound() -> None:
    assert TextLength(max_chars=3)(subject("")).message == "0 chars within 0..3"
    assert TextLength(min_chars=1)(subject("a" * 10_000)).message == "10000 chars within 1..any"


# --- text.language -----------------------------------------------------------------------------


class StubDetector:
    def __init__(self, answer: tuple[str, float] | None) -> None:
        self.answer = answer
        self.seen: list[str] = []

    def detect(self, text: str) -> tuple[str, float] | None:
        self.seen.append(text)
        return self.answer


class BrokenDetector:
    def detect(self, text: str) -> tuple[str, float] | None:
        raise RuntimeError("model file missing")


@pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (FRENCH, "fr"), (GERMAN, "de")])
def test_real_detector_recognises_the_language(text: str, language: str) -> None:
    result = TextLanguage(language)(subject(text))
    assert result.code == "text.language"
    assert result.passed, result.message
    assert result.measured is not None
    found, confidence = result.measured.split()
    assert found == language
    assert float(confidence) > 0.9


@pytest.mark.parametrize(
    ("text", "expected", "found"),
    [(FRENCH, "en", "fr"), (GERMAN, "fr", "de"), (ENGLISH, "de", "en")],
)
def test_wrong_language_fails(text: str, expected: str, found: str) -> None:
    result = TextLanguage(expected)(subject(text))
    assert not result.passed
    assert result.repairable
    assert re.fullmatch(
        rf"detected {found} \(confidence [01]\.\d\d\), expected {expected}", result.message
    )
    assert result.measured is not None
    assert float(result.measured.split()[1]) > 0.9


def test_request_language_applies_when_the_policy_has_none() -> None:
    check = TextLanguage()
    assert check(subject(FRENCH, language="fr-CA")).passed
    mismatch = check(subject(ENGLISH, language="fr"))
    assert not mismatch.passed
    assert mismatch.message.endswith("expected fr")


def test_policy_language_wins_over_the_request() -> None:
    result = TextLanguage("de")(subject(GERMAN, language="en"))
    assert result.passed


def test_no_language_anywhere_passes() -> None:
    detector = StubDetector(("fr", 1.0))
    result = TextLanguage(detector=detector)(subject(ENGLISH))
    assert result.passed
    assert result.message == "no language constraint"
    assert detector.seen == []


def test_detector_that_cannot_tell_passes_as_not_checked() -> None:
    result = TextLanguage("en", detector=StubDetector(None))(subject(ENGLISH))
    assert result.passed
    assert result.message.startswith("language not checked")


def test_no_detector_passes_as_not_checked() -> None:
    result = TextLanguage("en", detector=None)(subject(FRENCH))
    assert result.passed
    assert result.message == "language not checked: no detector (expected en)"


def test_low_confidence_fails() -> None:
    result = TextLanguage("en", 0.8, StubDetector(("en", 0.6)))(subject("Buy now"))
    assert not result.passed
    assert result.repairable
    assert result.measured == "en 0.60"
    assert result.message == ("en detected with confidence 0.60, below min_language_confidence 0.8")


def test_broken_detector_is_not_the_texts_fault() -> None:
    result = TextLanguage("en", detector=BrokenDetector())(subject(ENGLISH))
    assert not result.passed
    assert not result.repairable
    assert result.message == "language detector failed: RuntimeError: model file missing"


def test_detector_answers_are_normalised() -> None:
    assert TextLanguage("en", detector=StubDetector(("EN-us", 0.99)))(subject(ENGLISH)).passed


def test_check_refuses_a_language_that_is_no_code() -> None:
    with pytest.raises(ValueError, match="not an ISO 639-1 code"):
        TextLanguage("english")
    assert TextLanguage(" EN ").language == "en"


def test_unusable_request_language_is_not_repairable() -> None:
    result = TextLanguage(detector=StubDetector(("en", 1.0)))(subject(ENGLISH, language="english"))
    assert not result.passed
    assert not result.repairable
    assert "'english'" in result.message


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en-US", "en"), (" FR_ca ", "fr"), ("de", "de"), (None, None), ("", None)],
)
def test_requested_language_is_the_primary_subtag(tag: str | None, expected: str | None) -> None:
    assert requested_language(subject("x", language=tag).request) == expected


def test_py3langid_detector_declines_text_without_letters() -> None:
    detector = Py3LangidDetector()
    assert detector.detect("12345 !!! ...") is None
    assert detector.detect("") is None
    detected = detector.detect(GERMAN)
    assert detected is not None
    assert detected[0] == "de"
    assert 0.5 < detected[1] <= 1.0


def test_default_detector_is_py3langid() -> None:
    assert default_detector() is PY3LANGID


# --- the policy --------------------------------------------------------------------------------


def test_policy_builds_only_what_it_sets() -> None:
    policy = TextPolicy(prohibited=["free"], required=["Terms apply."], max_chars=200)
    checks = text_policy_checks(policy, None)
    assert [check.code for check in checks] == [
        "text.prohibited",
        "text.required",
        "text.length",
        "text.language",
    ]
    bare = text_policy_checks(TextPolicy(), None)
    assert [check.code for check in bare] == ["text.language"]  # the request may set one


def test_policy_checks_work_together() -> None:
    policy = TextPolicy(prohibited=["free"], required=["Terms apply."], min_chars=10, language="en")
    checks = text_policy_checks(policy)
    good = [check(subject(ENGLISH + " Terms apply.")) for check in checks]
    assert all(result.passed for result in good), good
    bad = {check.code: check(subject("fr33. " + FRENCH)) for check in checks}
    assert {code for code, result in bad.items() if not result.passed} == {
        "text.prohibited",
        "text.required",
        "text.language",
    }


def test_policy_passes_its_detector_and_confidence() -> None:
    detector = StubDetector(("en", 0.7))
    policy = TextPolicy(language="EN", min_language_confidence=0.9)
    (check,) = text_policy_checks(policy, detector)
    assert isinstance(check, TextLanguage)
    assert (check.language, check.min_confidence, check.detector) == ("en", 0.9, detector)
    assert not check(subject("hello")).passed


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"prohibited": ["free", "  "]}, "must not be blank"),
        ({"prohibited": ["--"]}, "has no letters or digits"),
        ({"prohibited": ["\u200b"]}, "has no letters or digits"),
        ({"required": [""]}, "must not be blank"),
        ({"min_chars": 10, "max_chars": 5}, "min_chars 10 is above max_chars 5"),
        ({"min_chars": -1}, "greater than or equal to 0"),
        ({"language": "english"}, "is not an ISO 639-1 code"),
        ({"min_language_confidence": 1.5}, "less than or equal to 1"),
        ({"banned": ["free"]}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_policies_are_refused(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        TextPolicy.model_validate(fields)


def test_policy_keeps_terms_as_written() -> None:
    policy = TextPolicy(prohibited=["free", "Buy Now"], language=" De ")
    assert policy.prohibited == ["free", "Buy Now"]
    assert policy.language == "de"
