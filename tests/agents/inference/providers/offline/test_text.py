"""Offline copy, JSON and code: localized, bounded, schema-conformant and syntactically valid."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline.code import render_code
from agents.inference.providers.offline.json_document import render_json
from agents.inference.providers.offline.text import (
    compose_copy,
    locale_language,
    render_copy,
    trim_text,
)

PROMPT = "Write an ad for ${product} aimed at ${persona}"
LOCALES = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP"]
LIMITS = [1, 2, 5, 9, 10, 17, 25, 40, 80, 500]


def _variables(locale: str = "en-US", **extra: str) -> dict[str, str]:
    return {"product": "TrailRunner X2", "persona": "weekend hikers", "locale": locale, **extra}


# --- copy -------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("max_chars", LIMITS)
@pytest.mark.parametrize("seed", [0, 1, 2, 2**63 + 12345])
def test_copy_respects_max_chars_and_is_never_empty(locale: str, max_chars: int, seed: int) -> None:
    full = render_copy(PROMPT, _variables(locale), None, seed)
    text = render_copy(PROMPT, _variables(locale), max_chars, seed)
    assert 0 < len(text) <= max_chars
    assert text.strip() == text
    assert full.startswith(text)
    first_word = full.split()[0]
    if len(text) < len(full) and max_chars >= len(first_word):
        assert not full[len(text)].isalnum(), "cut must fall on a word boundary"


@pytest.mark.parametrize(
    ("locale", "marker"),
    [("en-US", "everyone"), ("de-DE", "alle"), ("fr-FR", "tous"), ("es-ES", "todos")],
)
def test_copy_uses_the_locale_phrasing(locale: str, marker: str) -> None:
    variables = _variables(locale)
    del variables["persona"]
    texts = {render_copy(PROMPT, variables, None, seed) for seed in range(6)}
    assert all(marker in text for text in texts)


@pytest.mark.parametrize(
    ("locale", "language"),
    [("de-DE", "de"), ("de_AT", "de"), ("FR", "fr"), ("es-419", "es"), ("ja-JP", "en"), ("", "en")],
)
def test_locale_language(locale: str, language: str) -> None:
    assert locale_language(locale) == language


def test_locale_argument_overrides_missing_variable() -> None:
    variables = {"product": "X2", "persona": "Läufer"}
    assert "für" in render_copy(PROMPT, variables, None, 0, locale="de-DE")


def test_copy_is_deterministic_and_varies_with_seed() -> None:
    variables = _variables("fr-FR")
    assert render_copy(PROMPT, variables, None, 7) == render_copy(PROMPT, variables, None, 7)
    assert len({render_copy(PROMPT, variables, None, seed) for seed in range(12)}) > 1


def test_copy_includes_variables_and_headline() -> None:
    text = render_copy(PROMPT, _variables(headline="Fresh drop!"), None, 0)
    assert text.startswith("Fresh drop!")
    assert "TrailRunner X2" in text
    assert "weekend hikers" in text


def test_prompt_fills_placeholders_safely() -> None:
    text = render_copy("Sale on ${thing} for $$5 and ${missing}", {"thing": "boots"}, None, 0)
    assert "boots" in text
    assert "${missing}" in text  # safe_substitute leaves unknown names, never raises


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("hello world", None, "hello world"),
        ("hello world", 11, "hello world"),
        ("hello world", 10, "hello"),
        ("hello world", 5, "hello"),
        ("hello world", 6, "hello"),
        ("hello, world", 8, "hello"),
        ("Supercalifragilistic", 5, "Super"),
        ("a b", 1, "a"),
    ],
)
def test_trim_text(text: str, limit: int | None, expected: str) -> None:
    assert trim_text(text, limit) == expected


def test_trim_text_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError):
        trim_text("hello", 0)


# --- JSON -------------------------------------------------------------------------------------


def _json(schema: dict[str, Any] | None, seed: int = 3, **extra: str) -> Any:
    text = render_json(
        PROMPT, _variables("de-DE", **extra), None if schema is None else json.dumps(schema), seed
    )
    return json.loads(text)


def test_json_without_schema_is_a_copy_object() -> None:
    document = _json(None)
    assert set(document) == {"headline", "body", "cta", "locale", "variables"}
    assert document["locale"] == "de-DE"
    assert document["variables"]["persona"] == "weekend hikers"


SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "headline": {"type": "string", "minLength": 5, "maxLength": 30},
            "persona": {"type": "string"},
            "cta": {"type": "string", "maxLength": 20},
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "count": {"type": "integer", "minimum": 3, "maximum": 5},
            "discount": {"type": "integer", "exclusiveMaximum": -10},
            "price": {"type": "number", "minimum": 9.99},
            "step": {"type": "integer", "minimum": 7, "maximum": 40, "multipleOf": 5},
            "active": {"type": "boolean"},
            "channel": {"enum": ["email", "sms", "push"]},
            "kind": {"const": "ad"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3},
            "sizes": {
                "type": "array",
                "items": {"enum": [1, 2]},
                "minItems": 2,
                "uniqueItems": True,
            },
            "lines": {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "minItems": 4,
            },
            "contact": {"type": "string", "format": "email"},
            "note": {"type": ["string", "null"], "minLength": 300},
        },
        "required": ["headline", "persona", "score", "missing_from_properties"],
        "additionalProperties": True,
    },
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {
            "variant": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "maxLength": 12},
                    "locale": {"type": "string"},
                },
                "required": ["title", "locale"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {
            "variants": {"type": "array", "items": {"$ref": "#/$defs/variant"}, "minItems": 2},
            "primary": {"$ref": "#/$defs/variant"},
            "meta": {
                "allOf": [
                    {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "boolean"}}},
                ]
            },
            "either": {"oneOf": [{"type": "integer", "minimum": 100}, {"type": "string"}]},
            "pair": {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
            },
        },
        "required": ["variants", "primary", "meta", "either", "pair"],
        "additionalProperties": False,
    },
    {"type": "array", "items": {"type": "integer", "minimum": -5, "maximum": -1}, "minItems": 5},
    {"type": "string", "maxLength": 3},
    {"type": "integer"},
    {"type": "boolean"},
    {"type": "null"},
    {"enum": ["only"]},
    {},
    {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["label"],
            }
        },
        "$ref": "#/$defs/node",
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("seed", [0, 1, 3, 2**64 - 1])
def test_json_satisfies_the_schema(schema: dict[str, Any], seed: int) -> None:
    document = _json(schema, seed)
    jsonschema.Draft202012Validator(schema).validate(document)


def test_json_properties_come_from_matching_variables() -> None:
    schema = {
        "type": "object",
        "properties": {
            "persona": {"type": "string"},
            "product": {"type": "string"},
            "locale": {"type": "string"},
        },
    }
    document = _json(schema)
    assert document == {"persona": "weekend hikers", "product": "TrailRunner X2", "locale": "de-DE"}


def test_json_other_strings_come_from_the_copy() -> None:
    schema = {
        "type": "object",
        "properties": {"body": {"type": "string"}, "cta": {"type": "string"}},
    }
    copy = compose_copy(PROMPT, _variables("de-DE"), 3)
    assert _json(schema) == {"body": copy.body, "cta": copy.cta}


def test_json_is_deterministic() -> None:
    schema = SCHEMAS[0]
    assert _json(schema, 9) == _json(schema, 9)


@pytest.mark.parametrize(
    "schema_text",
    [
        "{not json",
        json.dumps({"type": "string", "minLength": 10**9}),
        json.dumps({"type": "string", "minLength": "ten"}),
        json.dumps(
            {
                "$defs": {
                    "n": {
                        "type": "object",
                        "properties": {"next": {"$ref": "#/$defs/n"}},
                        "required": ["next"],
                    }
                },
                "$ref": "#/$defs/n",
            }
        ),
        json.dumps({"type": "array", "minItems": 10**7}),
    ],
)
def test_unsatisfiable_or_malformed_schema_is_a_bad_constraint(schema_text: str) -> None:
    with pytest.raises(ProviderError) as caught:
        render_json(PROMPT, _variables(), schema_text, 0)
    assert caught.value.code == "provider.bad_constraints"


# --- code -------------------------------------------------------------------------------------

NASTY = {
    "product": "Quote ' \" ''' \"\"\" \\ end",
    "persona": "line\nbreak\r\u2028sep\u2029\x00nul",
    "locale": "de-DE",
}


@pytest.mark.parametrize("language", [None, "python", "Python", "py", "python3"])
@pytest.mark.parametrize("variables", [_variables(), NASTY])
def test_python_code_parses(language: str | None, variables: dict[str, str]) -> None:
    code = render_code(PROMPT, variables, language, 5)
    tree = ast.parse(code)
    assert any(isinstance(node, ast.FunctionDef) for node in tree.body)
    namespace: dict[str, Any] = {}
    exec(compile(tree, "<offline>", "exec"), namespace)  # our own snippet: run it to check values
    assert namespace["VARIABLES"] == variables
    assert namespace["headline"]() == render_copy(PROMPT, variables, None, 5)


@pytest.mark.parametrize("language", ["javascript", "js", "JS", "node"])
@pytest.mark.parametrize("variables", [_variables(), NASTY])
def test_javascript_code_is_valid(language: str, variables: dict[str, str], tmp_path: Path) -> None:
    code = render_code(PROMPT, variables, language, 5)
    assert code.isascii()
    assert "module.exports" in code
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "snippet.js"
    script.write_text(code, encoding="utf-8")
    probe = "const m = require(process.argv[1]); process.stdout.write(JSON.stringify(m.VARIABLES));"
    result = subprocess.run(
        [node, "-e", probe, str(script)], capture_output=True, text=True, check=True, timeout=30
    )
    assert json.loads(result.stdout) == variables


def test_json_code_is_json() -> None:
    assert json.loads(render_code(PROMPT, _variables(), "JSON", 5))["locale"] == "en-US"


def test_code_is_deterministic() -> None:
    assert render_code(PROMPT, _variables(), "python", 1) == render_code(
        PROMPT, _variables(), "python", 1
    )


@pytest.mark.parametrize("language", ["cobol", "", "rust", "html"])
def test_unknown_language_is_rejected(language: str) -> None:
    with pytest.raises(ProviderError) as caught:
        render_code(PROMPT, _variables(), language, 0)
    assert caught.value.code == "provider.unsupported_language"
    assert not caught.value.retryable
