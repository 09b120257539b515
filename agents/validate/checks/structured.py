"""Structured checks: JSON parses and matches its schema; code parses in its language.

Everything here treats the asset *and* the request as untrusted: a bad schema in the request is
a failed check, and schema ``$ref``s are resolved only against the bundled meta-schemas, because
jsonschema's default registry would fetch remote URLs (an SSRF vector). The schema's regexes
(``pattern``, ``patternProperties``) run on RE2, whose matching is linear in the text: Python's
backtracking ``re`` spends seconds, holding the GIL, on ``^(a+)+$`` against 29 characters.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, ClassVar, Final

import re2
import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema_specifications import REGISTRY as META_SCHEMAS  # type: ignore[import-untyped]
from referencing.exceptions import Unresolvable

from agents.validate.checks._base import Subject, result
from agents.validate.checks.text import decode_utf8
from schemas.errors import AssetlineError
from schemas.records import AssetKind, CheckResult, GenerationRequest

try:  # libyaml's parser is several times faster; PyYAML may be built without it
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

_JSON_OR_CODE: Final = frozenset({AssetKind.JSON, AssetKind.CODE})
_CODE: Final = frozenset({AssetKind.CODE})


def language_of(request: GenerationRequest) -> str | None:
    """Normalized ``constraints.language`` ("Python " -> "python"), None when unset or blank."""
    language = (request.constraints.language or "").strip().lower()
    return language or None


def is_json_asset(request: GenerationRequest) -> bool:
    """JSON assets, and CODE assets written in JSON."""
    return request.kind is AssetKind.JSON or (
        request.kind is AssetKind.CODE and language_of(request) == "json"
    )


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 pointer for a jsonschema error path; the document root is ``""``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@dataclass(frozen=True)
class Parsed:
    """Strict JSON parsing outcome: ``value`` when ``problem`` is None."""

    value: Any = None
    problem: str | None = None
    where: str | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes) -> Parsed:
    """Parse RFC 8259 JSON bytes: strict UTF-8 first, then :func:`parse_json_text`."""
    decoded = decode_utf8(data)
    if decoded.text is None:
        return Parsed(problem=str(decoded.problem))
    return parse_json_text(decoded.text)


def parse_json_text(text: str) -> Parsed:
    """Parse JSON without NaN/Infinity, which Python's json accepts but JSON does not."""
    try:
        return Parsed(json.loads(text, parse_constant=_reject_constant))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        return Parsed(problem=f"invalid JSON at {where}: {exc.msg}", where=where)
    except ValueError as exc:
        return Parsed(problem=f"invalid JSON: {exc}")
    except RecursionError:
        return Parsed(problem="invalid JSON: nested too deeply")


@dataclass(frozen=True)
class JsonParses:
    """``json.parses``: JSON assets (and CODE in JSON) are well-formed JSON."""

    code: ClassVar[str] = "json.parses"
    kinds: ClassVar[frozenset[AssetKind]] = _JSON_OR_CODE

    def __call__(self, subject: Subject) -> CheckResult:
        if not is_json_asset(subject.request):
            return CheckResult(
                code=self.code,
                passed=True,
                message=f"not applicable: CODE in {language_of(subject.request) or 'no language'}",
            )
        parsed = parse_json(subject.data)
        if parsed.problem is not None:
            return CheckResult(
                code=self.code,
                passed=False,
                message=parsed.problem,
                measured=parsed.where,
                repairable=True,
            )
        return CheckResult(
            code=self.code, passed=True, message="valid JSON", measured=type(parsed.value).__name__
        )


class UnsupportedPattern(AssetlineError):
    """A schema regex RE2 cannot run (lookaround, backreferences): the request must change."""

    code = "constraints.unsupported_pattern"


_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is a result, not a line on stderr


@lru_cache(maxsize=1024)
def linear_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (linear-time matching); cached, campaigns repeat schemas.

    Raises :class:`UnsupportedPattern` for what RE2 refuses, backtracking-only features included.
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else str(exc)
        raise UnsupportedPattern(
            f"pattern {pattern[:100]!r} is not supported by the linear-time regex engine "
            f"(no lookaround or backreferences): {reason}"
        ) from None


def _matches(pattern: str, text: str) -> bool:
    return linear_regex(pattern).search(text) is not None


def _brief(text: str, limit: int = 100) -> str:
    """``repr`` of a string cut to ``limit`` characters: a value may be megabytes long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


# The keywords below are jsonschema 4's own, with ``re.search`` replaced by RE2.
def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterable[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{_brief(instance)} does not match {_brief(pattern)}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterable[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterable[ValidationError]:
    patterns = schema.get("patternProperties")
    if not patterns or not validator.is_type(instance, "object"):  # no regex involved
        yield from Draft202012Validator.VALIDATORS["additionalProperties"](
            validator, additional, instance, schema
        )
        return
    properties = schema.get("properties", {})
    extras = sorted(
        key
        for key in instance
        if key not in properties and not any(_matches(pattern, key) for pattern in patterns)
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        verb = "does" if len(extras) == 1 else "do"
        joined = ", ".join(repr(each) for each in extras)
        regexes = ", ".join(repr(each) for each in sorted(patterns))
        yield ValidationError(f"{joined} {verb} not match any of the regexes: {regexes}")


#: Draft 2020-12 with every instance regex on RE2. ``unevaluatedProperties`` would still run
#: ``patternProperties`` through ``re``, so :func:`compile_schema` refuses that pair.
LinearValidator: Final = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def _keywords_in(schema: Any) -> set[str]:
    """Every object key anywhere in the schema (iterative: depth is bounded only by the parser)."""
    keys: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            keys.update(key for key in node if isinstance(key, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return keys


@lru_cache(maxsize=128)
def compile_schema(schema_text: str) -> Validator | str:
    """A validator for the schema text, or why the schema is unusable; cached per schema text.

    Requests of one campaign repeat the same schema, so compiling once per text is worth it.
    """
    try:
        schema = json.loads(schema_text)
    except (ValueError, RecursionError) as exc:
        return f"constraints.json_schema is not valid JSON: {exc}"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = json_pointer(exc.absolute_path) or "the schema root"
        return (
            f"constraints.json_schema is not a valid draft 2020-12 schema at {where}: {exc.message}"
        )
    if {"unevaluatedProperties", "patternProperties"} <= _keywords_in(schema):
        return (
            "constraints.json_schema uses unevaluatedProperties together with "
            "patternProperties, which is not supported (the regexes could not run in linear time)"
        )
    return LinearValidator(schema, registry=META_SCHEMAS)


@dataclass(frozen=True)
class JsonSchema:
    """``json.schema``: the JSON matches ``constraints.json_schema`` (draft 2020-12), if set."""

    code: ClassVar[str] = "json.schema"
    kinds: ClassVar[frozenset[AssetKind]] = _JSON_OR_CODE

    def __call__(self, subject: Subject) -> CheckResult:
        schema_text = subject.request.constraints.json_schema
        if not is_json_asset(subject.request) or schema_text is None:
            return self._result(True, "no JSON schema constraint")
        validator = compile_schema(schema_text)
        if isinstance(validator, str):  # the request's schema is broken: only a person can fix it
            return self._result(False, validator, repairable=False)
        parsed = parse_json(subject.data)
        if parsed.problem is not None:
            return self._result(False, f"cannot match the schema: {parsed.problem}")
        try:
            error = best_match(validator.iter_errors(parsed.value))
        except Unresolvable as exc:
            return self._result(
                False, f"schema reference cannot be resolved: {exc}", repairable=False
            )
        except UnsupportedPattern as exc:  # only a corrected request can fix it
            return self._result(False, f"constraints.json_schema: {exc}", repairable=False)
        if error is None:
            return self._result(True, "matches the JSON schema")
        pointer = json_pointer(error.absolute_path)
        where = pointer or "the document root"
        return self._result(False, f"schema violation at {where}: {error.message}", pointer)

    def _result(
        self, passed: bool, message: str, measured: str | None = None, *, repairable: bool = True
    ) -> CheckResult:
        return result(self.code, passed, message, measured, repairable=repairable)


@dataclass(frozen=True)
class SyntaxIssue:
    """Why source does not parse; ``location`` is e.g. ``"line 3"``."""

    message: str
    location: str | None = None


#: Takes decoded source, returns None when it parses.
SyntaxChecker = Callable[[str], SyntaxIssue | None]


def python_syntax(source: str) -> SyntaxIssue | None:
    """Parse (never execute) Python with ``ast.parse``."""
    try:
        ast.parse(source)
    except SyntaxError as exc:
        location = f"line {exc.lineno}"
        column = f", column {exc.offset}" if exc.offset is not None else ""
        return SyntaxIssue(f"SyntaxError at {location}{column}: {exc.msg}", location)
    except (ValueError, RecursionError, MemoryError) as exc:
        return SyntaxIssue(f"Python does not parse: {type(exc).__name__}: {exc}")
    return None


def json_syntax(source: str) -> SyntaxIssue | None:
    """JSON syntax via the same strict parser as ``json.parses``."""
    parsed = parse_json_text(source)
    return None if parsed.problem is None else SyntaxIssue(parsed.problem, parsed.where)


def yaml_syntax(source: str) -> SyntaxIssue | None:
    """Load every document with the safe loader: never builds Python objects from tags.

    Tags the safe loader does not know (``!!python/object``, CloudFormation's ``!Ref``) fail,
    since no safe consumer could load them either. Aliases are shared, not expanded, so an
    alias bomb costs no memory.
    """
    try:
        for _ in yaml.load_all(source, Loader=_YamlLoader):
            pass
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "does not parse"
        context = f" ({exc.context})" if exc.context else ""
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            return SyntaxIssue(f"invalid YAML: {problem}{context}")
        where = f"line {mark.line + 1} column {mark.column + 1}"
        return SyntaxIssue(f"invalid YAML at {where}: {problem}{context}", where)
    except yaml.YAMLError as exc:  # e.g. ReaderError: a character YAML does not allow
        return SyntaxIssue(f"invalid YAML: {exc}")
    except RecursionError:
        return SyntaxIssue("invalid YAML: nested too deeply")
    return None


DEFAULT_SYNTAX_CHECKERS: Final[Mapping[str, SyntaxChecker]] = MappingProxyType(
    {"python": python_syntax, "json": json_syntax, "yaml": yaml_syntax, "yml": yaml_syntax}
)


@dataclass(frozen=True, eq=False)
class CodeSyntax:
    """``code.syntax``: CODE parses in ``constraints.language``; pass a mapping to add languages."""

    checkers: Mapping[str, SyntaxChecker] = field(default_factory=lambda: DEFAULT_SYNTAX_CHECKERS)
    code: ClassVar[str] = "code.syntax"
    kinds: ClassVar[frozenset[AssetKind]] = _CODE

    def __call__(self, subject: Subject) -> CheckResult:
        language = language_of(subject.request)
        checker = self.checkers.get(language) if language is not None else None
        if checker is None:
            return CheckResult(
                code=self.code,
                passed=True,
                message=f"no syntax checker for {language or 'unspecified language'}",
                measured=language,
            )
        decoded = decode_utf8(subject.data)
        if decoded.text is None:
            return CheckResult(
                code=self.code, passed=False, message=str(decoded.problem), repairable=True
            )
        issue = checker(decoded.text)
        if issue is None:
            return CheckResult(
                code=self.code, passed=True, message=f"valid {language} syntax", measured=language
            )
        return CheckResult(
            code=self.code,
            passed=False,
            message=issue.message,
            measured=issue.location,
            repairable=True,
        )
