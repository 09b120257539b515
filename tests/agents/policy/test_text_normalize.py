"""The skeleton normaliser: width, invisible characters, case, confusables and leetspeak."""

from __future__ import annotations

import re
import unicodedata

import pytest

from agents.policy.text_normalize import (
    AMBIGUOUS,
    LEET,
    caseless,
    char_pattern,
    decode_markup,
    skeleton,
    skeleton_map,
    translation_table,
    visual_order,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FREE", "free"),
        ("Free Shipping", "free shipping"),
        ("\uff26\uff52\uff45\uff45", "free"),  # fullwidth
        ("fr\u0435\u0435", "free"),  # Cyrillic ie
        ("\u0421\u0410\u0422", "cat"),  # Cyrillic capitals
        ("\u0392UY", "buy"),  # Greek capital beta, which case-folds to a letter unlike b
        ("\U0001d41f\U0001d42b\U0001d41e\U0001d41e", "free"),  # mathematical bold
        ("\ufb01ne", "fine"),  # ligature
        ("fr\u200bee", "free"),  # zero-width space
        ("fr\u200dee", "free"),  # zero-width joiner
        ("fr\u00adee", "free"),  # soft hyphen
        ("\u202efree\u202c", "free"),  # BiDi override and pop
        ("fr\u2060ee\ufeff", "free"),  # word joiner, BOM
        ("fr\U000e0041ee", "free"),  # tag character
        ("fr\ufe0fee", "free"),  # variation selector
        ("f\u0332r\u0332e\u0332e\u0332", "free"),  # combining low line
        ("fr33", "free"),
        ("$@l3", "sale"),
        ("h0t d34l5 70day", "hot deals today"),
        ("Stra\u00dfe", "strasse"),
        ("\u0130stanbul", "istanbul"),
        ("caf\u00e9", "cafe"),  # accents fold: fr\u00e9e is free (issue 12 item 11)
        ("cafe\u0301", "cafe"),  # decomposed input composes first, then folds
        ("\u0131", "i"),  # dotless i looks like i
        ("\ua730\u0280\u1d07\u1d07", "free"),  # Latin small capitals
        ("\u0192ree", "free"),  # f with hook
        ("\U0001f1eb\U0001f1f7\U0001f1ea\U0001f1ea", "free"),  # regional indicators
        ("FR\u20ac\u20ac", "free"),  # euro sign as e
        ("9uaranteed", "guaranteed"),
        ("\u00e6sop", "aesop"),
        ("\u0434\u0436", "\u0434\u0436"),  # Cyrillic that resembles no Latin letter stays
    ],
)
def test_skeleton_folds_obfuscations(text: str, expected: str) -> None:
    assert skeleton(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k1ll", "k1ll"),  # 1 may be i or l: kept, patterns decide
        ("\u04c0", AMBIGUOUS),  # Cyrillic palochka, a bare stroke
        ("\u0406", AMBIGUOUS),  # Cyrillic capital I, same stroke
        ("\u0399", AMBIGUOUS),  # Greek capital iota
        ("\u2113", "l"),  # script l is NFKC-mapped to l before confusables
        ("l", "l"),
        ("I", "i"),
    ],
)
def test_one_and_bare_strokes_stay_ambiguous(text: str, expected: str) -> None:
    assert skeleton(text) == expected


def test_leet_table_is_the_documented_one() -> None:
    assert dict(LEET) == {
        "0": "o",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "9": "g",
        "@": "a",
        "$": "s",
        "\u20ac": "e",
    }
    assert "1" not in LEET


def test_every_format_character_is_dropped() -> None:
    format_chars = [chr(cp) for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cf"]
    assert len(format_chars) > 150  # BMP, Brahmi/musical/shorthand controls, tags
    for char in format_chars:
        assert skeleton(f"a{char}b") == "ab", f"U+{ord(char):04X} survived"


def test_ascii_fast_path_matches_the_general_path() -> None:
    text = "Get FR33 Stuff @ 50% off, $ave 7 days: I l 1!"
    with_non_ascii = skeleton(text + " \u00e9")
    assert skeleton(text) == with_non_ascii[: -len(" \u00e9")]


def test_table_is_built_once() -> None:
    assert translation_table() is translation_table()
    assert translation_table()[0x200B] == ""


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii, nothing to map",
        "Get \uff26\uff52\uff45\uff45 now \u2014 fr\u200bee, caf\u00e9",
        "cafe\u0301 Stra\u00dfe \u0130stanbul \ufb01ne",
    ],
)
def test_skeleton_map_agrees_with_skeleton(text: str) -> None:
    assert skeleton_map(text).text == skeleton(text)


@pytest.mark.parametrize(
    ("text", "word", "source"),
    [
        ("Get FREE now", "free", "FREE"),
        ("Get \uff26\uff52\uff45\uff45 now", "free", "\uff26\uff52\uff45\uff45"),
        ("Get fr\u200bee now", "free", "fr\u200bee"),
        ("A Stra\u00dfe here", "strasse", "Stra\u00dfe"),
        ("Un cafe\u0301 noir", "cafe", "cafe\u0301"),
    ],
)
def test_skeleton_map_points_back_to_the_source(text: str, word: str, source: str) -> None:
    mapped = skeleton_map(text)
    start = mapped.text.index(word)
    begin, end = mapped.source_span(start, start + len(word))
    assert text[begin:end] == source


@pytest.mark.parametrize(
    ("char", "matches", "rejects"),
    [
        ("i", ["i", "1"], ["l"]),
        ("l", ["l", "1"], ["i"]),
        ("1", ["1", "i", "l"], ["o"]),
        ("e", ["e"], ["3", "1"]),  # 3 is already e in a skeleton
        (".", ["."], ["x"]),  # escaped, not a wildcard
    ],
)
def test_char_pattern(char: str, matches: list[str], rejects: list[str]) -> None:
    pattern = re.compile(char_pattern(char))
    for text in matches:
        assert pattern.fullmatch(text), text
    for text in rejects:
        assert not pattern.fullmatch(text), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Terms\u00a0 APPLY.\n", "terms apply."),
        ("\uff34erms\tapply.", "terms apply."),
        ("STRASSE  Stra\u00dfe", "strasse strasse"),
    ],
)
def test_caseless(text: str, expected: str) -> None:
    assert caseless(text) == expected


@pytest.mark.parametrize(
    ("text", "decoded", "word", "source"),
    [
        ("fr&#101;e", "free", "free", "fr&#101;e"),
        ("fr&#X65;e", "free", "free", "fr&#X65;e"),
        ("fr&eacute;e", "fr\u00e9e", "fr\u00e9e", "fr&eacute;e"),
        ("fr&amp;#101;e", "free", "free", "fr&amp;#101;e"),
        ("fr<b></b>ee <span class='x'>now</span>", "free now", "free", "fr<b></b>ee"),
        ("a<br>b<p>c</p>", "a b c ", "b", "b"),
        ("fr<!-- hidden -->ee", "free", "free", "fr<!-- hidden -->ee"),
        ("fr%65e", "free", "free", "fr%65e"),
        ("fr\\u0065e", "free", "free", "fr\\u0065e"),
        ("\\ud83c\\uddeb!", "\U0001f1eb!", "\U0001f1eb", "\\ud83c\\uddeb"),  # a pair
        ("\\ud800 C:\\users", "\\ud800 C:\\users", "C:", "C:"),  # lone surrogate, a path
        ("fr%C3%A9e", "fr\u00e9e", "fr\u00e9e", "fr%C3%A9e"),
        ("20%AB off, R&D, Q&A, 5 < 6 > 4", "20%AB off, R&D, Q&A, 5 < 6 > 4", "R&D", "R&D"),
    ],
)
def test_decode_markup_maps_back_to_the_source(
    text: str, decoded: str, word: str, source: str
) -> None:
    view = decode_markup(text)
    assert view.text == decoded
    start = view.text.index(word)
    begin, end = view.source_span(start, start + len(word))
    assert text[begin:end] == source


def test_decode_markup_is_free_for_plain_text() -> None:
    view = decode_markup("nothing to decode here")
    assert view.starts is None


@pytest.mark.parametrize(
    ("text", "displayed"),
    [
        ("a \u202eeerf\u202c b", "a free\u202e\u202c b"),
        ("\u202eeerf", "free\u202e"),
        ("x\u202eab\ncd", "xba\u202e\ncd"),  # a paragraph ends the override
        ("\u202eab\u202bcd\u202cef\u202c!", "fe\u202cdc\u202bba\u202e\u202c!"),  # nesting
    ],
)
def test_visual_order(text: str, displayed: str) -> None:
    view = visual_order(decode_markup(text))
    assert view is not None
    assert view.text == displayed


def test_visual_order_maps_back_to_the_source() -> None:
    text = "go \u202eeer&#102;\u202c"
    view = visual_order(decode_markup(text))
    assert view is not None
    start = view.text.index("free")
    begin, end = view.source_span(start, start + 4)
    assert text[begin:end] == "eer&#102;"
    assert visual_order(decode_markup("no override")) is None
