"""JSON parsing, JSON Schema (draft 2020-12) and code syntax checks on real documents."""

from __future__ import annotations

import json
import time
import tomllib
import urllib.request

import pytest

from agents.validate.checks._base import Subject
from agents.validate.checks.structured import (
    DEFAULT_SYNTAX_CHECKERS,
    CodeSyntax,
    JsonParses,
    JsonSchema,
    SyntaxIssue,
    json_pointer,
)
from schemas.records import AssetKind, CheckResult, Constraints, GenerationRequest

CATALOG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku", "price"],
                "properties": {"sku": {"type": "string"}, "price": {"type": "number"}},
            },
        }
    },
}


def subject(
    data: bytes | str,
    kind: AssetKind = AssetKind.JSON,
    *,
    schema: object = None,
    language: str | None = None,
) -> Subject:
    schema_text = schema if isinstance(schema, str) or schema is None else json.dumps(schema)
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=kind,
        prompt_template="make something",
        constraints=Constraints(json_schema=schema_text, language=language),
    )
    raw = data.encode() if isinstance(data, str) else data
    return Subject(request=request, data=raw, media_type="application/json")


# --- json.parses -------------------------------------------------------------------------------


def test_valid_json_parses() -> None:
    result = JsonParses()(subject('{"a": [1, 2.5, null, "ü"]}'))
    assert result.code == "json.parses"
    assert result.passed
    assert result.measured == "dict"


def test_invalid_json_reports_line_and_column() -> None:
    result = JsonParses()(subject("{\n  \"a\": 1,\n  'b': 2\n}"))
    assert not result.passed
    assert result.measured == "line 3 column 3"
    assert result.message == (
        "invalid JSON at line 3 column 3: Expecting property name enclosed in double quotes"
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_constants_are_rejected(constant: str) -> None:
    result = JsonParses()(subject(f'{{"x": {constant}}}'))
    assert not result.passed
    assert result.message == f"invalid JSON: {constant} is not valid JSON"


def test_json_must_be_utf8() -> None:
    result = JsonParses()(subject('{"a": "é"}'.encode("utf-16")))
    assert not result.passed
    assert result.message.startswith("not valid UTF-8")


def test_code_in_json_is_parsed_and_other_code_is_not_applicable() -> None:
    broken = subject("[1, 2,]", AssetKind.CODE, language="JSON")
    assert not JsonParses()(broken).passed

    python = JsonParses()(subject("print('hi')", AssetKind.CODE, language="python"))
    assert python.passed
    assert python.message == "not applicable: CODE in python"


# --- json.schema -------------------------------------------------------------------------------


def test_matching_document_passes() -> None:
    doc = {"items": [{"sku": "a-1", "price": 9.5}]}
    result = JsonSchema()(subject(json.dumps(doc), schema=CATALOG_SCHEMA))
    assert result.code == "json.schema"
    assert result.passed
    assert result.message == "matches the JSON schema"


def test_nested_violation_reports_its_json_pointer() -> None:
    doc = {"items": [{"sku": "a-1", "price": 9.5}, {"sku": "b-2", "price": "cheap"}]}
    result = JsonSchema()(subject(json.dumps(doc), schema=CATALOG_SCHEMA))
    assert not result.passed
    assert result.measured == "/items/1/price"
    assert result.message == "schema violation at /items/1/price: 'cheap' is not of type 'number'"


def test_missing_required_property_points_at_its_parent() -> None:
    doc = {"items": [{"price": 1}]}
    result = JsonSchema()(subject(json.dumps(doc), schema=CATALOG_SCHEMA))
    assert not result.passed
    assert result.measured == "/items/0"
    assert "'sku' is a required property" in result.message


def test_root_violation_uses_the_empty_pointer() -> None:
    result = JsonSchema()(subject("[]", schema=CATALOG_SCHEMA))
    assert not result.passed
    assert result.measured == ""
    assert result.message == "schema violation at the document root: [] is not of type 'object'"


def test_pointer_escapes_tilde_and_slash() -> None:
    schema = {"properties": {"a/b": {"properties": {"c~d": {"type": "integer"}}}}}
    result = JsonSchema()(subject('{"a/b": {"c~d": "x"}}', schema=schema))
    assert result.measured == "/a~1b/c~0d"
    assert json_pointer(["a/b", 0, "~"]) == "/a~1b/0/~0"


def test_draft_2020_12_keywords_are_enforced() -> None:
    schema = {"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False}
    assert JsonSchema()(subject('["a", 1]', schema=schema)).passed
    extra = JsonSchema()(subject('["a", 1, true]', schema=schema))
    assert not extra.passed
    assert extra.measured == ""


def test_unset_schema_passes() -> None:
    result = JsonSchema()(subject('{"free": "form"}'))
    assert result.passed
    assert result.message == "no JSON schema constraint"


def test_schema_that_is_not_json_is_a_failed_check() -> None:
    result = JsonSchema()(subject("{}", schema="{type: object"))
    assert not result.passed
    assert result.message.startswith("constraints.json_schema is not valid JSON:")


def test_schema_invalid_against_the_meta_schema_is_a_failed_check() -> None:
    schema = {"properties": {"n": {"type": "integr"}}}
    result = JsonSchema()(subject('{"n": 1}', schema=schema))
    assert not result.passed
    assert result.message.startswith(
        "constraints.json_schema is not a valid draft 2020-12 schema at /properties/n/type:"
    )


def test_asset_that_is_not_json_fails_the_schema_check() -> None:
    result = JsonSchema()(subject("not json", schema=CATALOG_SCHEMA))
    assert not result.passed
    assert result.message.startswith("cannot match the schema: invalid JSON at line 1 column 1")


def test_remote_refs_are_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[object] = []

    def no_network(request: object, *args: object, **kwargs: object) -> None:
        fetched.append(request)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    schema = {"$ref": "https://internal.example/secret.json"}
    result = JsonSchema()(subject("{}", schema=schema))
    assert fetched == []
    assert not result.passed
    assert result.message.startswith("schema reference cannot be resolved:")
    assert "https://internal.example/secret.json" in result.message


def test_local_refs_resolve() -> None:
    schema = {
        "$defs": {"price": {"type": "number", "minimum": 0}},
        "properties": {"price": {"$ref": "#/$defs/price"}},
    }
    assert JsonSchema()(subject('{"price": 3}', schema=schema)).passed
    negative = JsonSchema()(subject('{"price": -3}', schema=schema))
    assert not negative.passed
    assert negative.measured == "/price"


def test_schema_applies_to_code_in_json() -> None:
    result = JsonSchema()(
        subject('{"items": 3}', AssetKind.CODE, schema=CATALOG_SCHEMA, language="json")
    )
    assert not result.passed
    assert result.measured == "/items"


# --- schema regexes run on RE2 (issue 12 item 3) -----------------------------------------------

EVIL = "^(a+)+$"  # Python's re takes ~35 s on 29 "a"s and a "!"; doubling per extra "a"


def timed(check: JsonSchema, what: Subject) -> tuple[CheckResult, float]:
    started = time.perf_counter()
    result = check(what)
    return result, time.perf_counter() - started


@pytest.mark.parametrize("length", [29, 10_000])
def test_backtracking_pattern_is_decided_at_once(length: int) -> None:
    schema = {"properties": {"v": {"type": "string", "pattern": EVIL}}}
    value = "a" * length + "!"
    result, seconds = timed(JsonSchema(), subject(json.dumps({"v": value}), schema=schema))
    assert seconds < 1.0  # before: 12.7 s on the event loop for 29 characters
    assert not result.passed
    assert result.repairable
    assert result.measured == "/v"
    # The value is quoted briefly, however long it is.
    assert f"({length + 1} characters)" in result.message or length + 1 <= 100
    assert len(result.message) < 400
    assert JsonSchema()(subject(json.dumps({"v": "a" * length}), schema=schema)).passed


def test_backtracking_pattern_property_is_decided_at_once() -> None:
    key = "a" * 40 + "!"
    schema = {"patternProperties": {"^(a|a)*$": {"type": "integer"}}}
    document = json.dumps({key: "x", "aaa": "not an integer"})
    result, seconds = timed(JsonSchema(), subject(document, schema=schema))
    assert seconds < 1.0
    assert not result.passed
    assert result.measured == "/aaa"


def test_backtracking_pattern_property_with_additional_properties_false() -> None:
    key = "a" * 40 + "!"
    schema = {"patternProperties": {"^(a|a)*$": {}}, "additionalProperties": False}
    result, seconds = timed(JsonSchema(), subject(json.dumps({key: 1, "aa": 2}), schema=schema))
    assert seconds < 1.0
    assert not result.passed
    assert result.message.endswith(f"'{key}' does not match any of the regexes: '^(a|a)*$'")
    extra = {"patternProperties": {"^x-": {}}, "additionalProperties": {"type": "integer"}}
    assert JsonSchema()(subject('{"x-a": "s", "n": 1}', schema=extra)).passed
    assert not JsonSchema()(subject('{"x-a": "s", "n": "s"}', schema=extra)).passed


def test_backtracking_property_names_pattern_is_decided_at_once() -> None:
    schema = {"propertyNames": {"pattern": EVIL}}
    result, seconds = timed(JsonSchema(), subject(json.dumps({"a" * 40 + "!": 1}), schema=schema))
    assert seconds < 1.0
    assert not result.passed


def test_ordinary_patterns_still_match() -> None:
    schema = {
        "properties": {"sku": {"pattern": "^[A-Z]{3}-\\d{4}$"}},
        "patternProperties": {"^x-": {"type": "string"}},
    }
    assert JsonSchema()(subject('{"sku": "ABC-1234", "x-note": "hi"}', schema=schema)).passed
    assert not JsonSchema()(subject('{"sku": "abc-1234"}', schema=schema)).passed
    assert not JsonSchema()(subject('{"sku": "ABC-1234", "x-note": 3}', schema=schema)).passed


@pytest.mark.parametrize("pattern", ["^(?=.*[A-Z]).+$", "^(a)\\1$", "(?<!x)y"])
def test_patterns_re2_cannot_run_are_a_request_problem(pattern: str) -> None:
    schema = {"properties": {"v": {"type": "string", "pattern": pattern}}}
    result = JsonSchema()(subject('{"v": "Aa"}', schema=schema))
    assert not result.passed
    assert not result.repairable  # a new generation cannot fix the request's schema
    assert "not supported by the linear-time regex engine" in result.message


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^(a|a)*$": {}}, "unevaluatedProperties": False}
    result, seconds = timed(JsonSchema(), subject(json.dumps({"a" * 40 + "!": 1}), schema=schema))
    assert seconds < 1.0
    assert not result.passed
    assert not result.repairable
    assert "unevaluatedProperties together with patternProperties" in result.message
    plain = {"properties": {"a": {}}, "unevaluatedProperties": False}
    assert JsonSchema()(subject('{"a": 1}', schema=plain)).passed
    assert not JsonSchema()(subject('{"a": 1, "b": 2}', schema=plain)).passed


# --- code.syntax -------------------------------------------------------------------------------


def test_valid_python_passes() -> None:
    source = "def greet(name: str) -> str:\n    return f'hi {name}'\n"
    result = CodeSyntax()(subject(source, AssetKind.CODE, language="Python"))
    assert result.code == "code.syntax"
    assert result.passed
    assert result.message == "valid python syntax"


def test_python_syntax_error_reports_its_line() -> None:
    source = "import os\n\ndef broken(:\n    pass\n"
    result = CodeSyntax()(subject(source, AssetKind.CODE, language="python"))
    assert not result.passed
    assert result.measured == "line 3"
    assert result.message.startswith("SyntaxError at line 3, column 12:")


def test_python_is_parsed_never_executed() -> None:
    source = "raise SystemExit('executed!')\n"
    assert CodeSyntax()(subject(source, AssetKind.CODE, language="python")).passed


def test_json_code_syntax() -> None:
    ok = CodeSyntax()(subject('{"a": 1}', AssetKind.CODE, language="json"))
    bad = CodeSyntax()(subject('{"a": 1,}', AssetKind.CODE, language="json"))
    assert ok.passed
    assert not bad.passed
    assert bad.measured == "line 1 column 9"


@pytest.mark.parametrize(
    ("language", "shown"), [("javascript", "javascript"), (None, "unspecified language")]
)
def test_languages_without_checker_pass_with_a_note(language: str | None, shown: str) -> None:
    result = CodeSyntax()(subject("const x = ;", AssetKind.CODE, language=language))
    assert result.passed
    assert result.message == f"no syntax checker for {shown}"


def test_invalid_utf8_code_fails() -> None:
    result = CodeSyntax()(subject(b"x = '\xff'", AssetKind.CODE, language="python"))
    assert not result.passed
    assert result.message.startswith("not valid UTF-8")


def test_checkers_are_pluggable() -> None:
    def toml_syntax(source: str) -> SyntaxIssue | None:
        try:
            tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            return SyntaxIssue(f"TOML: {exc}", "toml")
        return None

    check = CodeSyntax({**DEFAULT_SYNTAX_CHECKERS, "toml": toml_syntax})
    assert check(subject('a = "b"', AssetKind.CODE, language="toml")).passed
    bad = check(subject("a = ", AssetKind.CODE, language="toml"))
    assert not bad.passed
    assert bad.message.startswith("TOML: ")
    assert check(subject("x = (", AssetKind.CODE, language="python")).measured == "line 1"


def test_kinds() -> None:
    assert JsonParses().kinds == frozenset({AssetKind.JSON, AssetKind.CODE})
    assert JsonSchema().kinds == frozenset({AssetKind.JSON, AssetKind.CODE})
    assert CodeSyntax().kinds == frozenset({AssetKind.CODE})


# --- code.syntax: YAML -------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["yaml", "YAML", "yml"])
def test_valid_yaml_passes(language: str) -> None:
    source = "name: shoes\nsizes: [40, 41, 42]\nprice:\n  amount: 9.5\n  currency: EUR\n"
    result = CodeSyntax()(subject(source, AssetKind.CODE, language=language))
    assert result.passed
    assert result.message == f"valid {language.lower()} syntax"


def test_yaml_with_several_documents_passes() -> None:
    source = "kind: A\n---\nkind: B\n...\n---\n- 1\n"
    assert CodeSyntax()(subject(source, AssetKind.CODE, language="yaml")).passed


@pytest.mark.parametrize(
    ("source", "where", "message"),
    [
        (
            "a: 1\nb: [1, 2\n",
            "line 3 column 1",
            "invalid YAML at line 3 column 1: did not find expected ',' or ']' "
            "(while parsing a flow sequence)",
        ),
        (
            "a: b: c\n",
            "line 1 column 5",
            "invalid YAML at line 1 column 5: mapping values are not allowed in this context",
        ),
        (
            "key: 'unterminated\n",
            "line 2 column 1",
            "invalid YAML at line 2 column 1: found unexpected end of stream "
            "(while scanning a quoted scalar)",
        ),
        (
            "a: &x 1\nb: *y\n",
            "line 2 column 4",
            "invalid YAML at line 2 column 4: found undefined alias",
        ),
    ],
    ids=["flow-sequence", "nested-mapping", "quote", "alias"],
)
def test_yaml_errors_report_line_and_column(source: str, where: str, message: str) -> None:
    result = CodeSyntax()(subject(source, AssetKind.CODE, language="yaml"))
    assert not result.passed
    assert result.measured == where
    assert result.message == message


def test_yaml_python_tags_are_refused_not_executed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    marker = tmp_path_factory.mktemp("yaml") / "executed"
    source = f"!!python/object/apply:os.system ['touch {marker}']\n"
    result = CodeSyntax()(subject(source, AssetKind.CODE, language="yaml"))
    assert not result.passed
    assert "could not determine a constructor" in result.message
    assert result.measured == "line 1 column 1"
    assert not marker.exists()


def test_yaml_forbidden_characters_fail_without_a_location() -> None:
    issue = DEFAULT_SYNTAX_CHECKERS["yaml"]("a: \x00\n")
    assert issue is not None
    assert issue.message.startswith("invalid YAML: unacceptable character #x0000")
    assert issue.location is None


def test_yaml_alias_bomb_is_cheap() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    assert DEFAULT_SYNTAX_CHECKERS["yml"]("\n".join(lines)) is None  # shared, never expanded


def test_yaml_is_registered_under_both_names() -> None:
    assert DEFAULT_SYNTAX_CHECKERS["yaml"] is DEFAULT_SYNTAX_CHECKERS["yml"]
