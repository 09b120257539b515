"""One safe reader for every configuration file the line loads (YAML, TOML, JSON).

Routing files, brand profiles, destinations and campaign templates are written by people and
sometimes copied from elsewhere, so the reader trusts none of them: a file is read up to
:data:`MAX_CONFIG_BYTES`; YAML anchors, aliases and merge keys are refused (an alias bomb turns
a few KB into gigabytes the moment anything walks the data, e.g. a provider's ``params`` sent
with every call); a key written twice is an error in every format (YAML and JSON silently keep
the last one; TOML already refuses it); nesting is bounded. Every failure is a
:class:`ConfigError` whose message is one line naming the file and, where the parser knows it,
the line.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from schemas.errors import AssetlineError

__all__ = [
    "CONFIG_SUFFIXES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "ConfigError",
    "load_config_file",
    "one_line",
    "parse_config_text",
    "read_config_text",
    "validation_summary",
]

#: Real configuration files are a few KB; 1 MiB leaves room for a big profile or template.
MAX_CONFIG_BYTES: Final = 1 << 20
#: Deepest nesting of mappings and lists accepted; real files nest fewer than ten levels.
MAX_DEPTH: Final = 32
CONFIG_SUFFIXES: Final = (".yaml", ".yml", ".toml", ".json")

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class ConfigError(AssetlineError, ValueError):
    """A configuration file or setting is wrong. ``str()`` is one line: where, then what.

    The worker's start-up prints exactly this line and exits non-zero, never a traceback.
    """

    code = "config.invalid"


def one_line(text: str) -> str:
    """``text`` with its line breaks folded, so a message stays one line on a terminal."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def validation_summary(exc: ValidationError, source: str) -> str:
    """A pydantic error as one line: the first problem's field path and message (+ a count).

    Input values are left out on purpose: a field can hold a secret (a key pasted in the wrong
    place), and the message must be safe to print and log.
    """
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return one_line(f"{source}: {where}: {first['msg']}{more}")


Model = TypeVar("Model", bound=BaseModel)


def parse_config_model(
    text: str, suffix: str, source: str, model: type[Model], error: type[ConfigError]
) -> Model:
    """Parse through the safe reader and validate into ``model``; any failure is one ``error``."""
    try:
        data = parse_config_text(text, suffix, source)
    except ConfigError as exc:
        raise error(str(exc)) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(validation_summary(exc, source)) from None


def read_config_text(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The file's text; refuses more than ``max_bytes`` without reading the rest."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{path}: larger than {max_bytes} bytes; not a configuration file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text") from None


def load_config_file(
    path: Path, *, suffixes: Iterable[str] = CONFIG_SUFFIXES, max_bytes: int = MAX_CONFIG_BYTES
) -> Any:
    """Read and parse ``path`` by its suffix (``.yaml``/``.yml``, ``.toml``, ``.json``)."""
    allowed = tuple(suffixes)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise ConfigError(f"{path}: must end in {', '.join(allowed)}, not {suffix or '(none)'!r}")
    return parse_config_text(read_config_text(path, max_bytes=max_bytes), suffix, str(path))


def parse_config_text(text: str, suffix: str, source: str) -> Any:
    """Parse ``text`` as the format its ``suffix`` names; ``source`` names it in errors."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_CONFIG_BYTES} characters")
    suffix = suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = _parse_yaml(text, source)
        elif suffix == ".toml":
            data = _parse_toml(text, source)
        elif suffix == ".json":
            data = _parse_json(text, source)
        else:
            raise ConfigError(f"{source}: unknown configuration format {suffix!r}")
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    _check_depth(data, source)
    return data


# --- YAML ----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """The safe loader minus anchors, aliases and merge keys, plus duplicate-key refusal.

    Pure Python on purpose: the C loader composes nodes in C, where these hooks cannot run;
    configuration files are small, so speed does not matter here.
    """

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            mark: Any = event.start_mark
            raise ComposerError(None, None, f"YAML alias *{event.anchor} is not allowed here", mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise ComposerError(
                None,
                None,
                f"YAML anchor &{anchor} is not allowed here (write the value out)",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == _MERGE_TAG:
                raise ConstructorError(
                    None, None, "YAML merge keys (<<) are not allowed here", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the base constructor reports it
            if first is not None:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> Any:
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "does not parse"
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(one_line(f"{where}: not valid YAML: {problem}")) from None
    except yaml.YAMLError as exc:  # e.g. a ReaderError: a character YAML does not allow
        raise ConfigError(one_line(f"{source}: not valid YAML: {exc}")) from None
    finally:
        loader.dispose()


# --- TOML and JSON -------------------------------------------------------------------------

_TOML_LINE: Final = re.compile(r"\(at line (\d+), column \d+\)$")


def _parse_toml(text: str, source: str) -> Any:
    """tomllib already refuses a key defined twice; only the message is reshaped."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LINE.search(message)
        where = f"{source}:{match.group(1)}" if match else source
        problem = _TOML_LINE.sub("", message).strip()
        raise ConfigError(one_line(f"{where}: not valid TOML: {problem}")) from None


class _DuplicateJsonKey(AssetlineError):
    """A JSON object names a key twice; turned into a ConfigError naming the key."""

    code = "config.duplicate_key"

    def __init__(self, key: str) -> None:
        self.key = key


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJsonKey(key)
        result[key] = value
    return result


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_object)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except _DuplicateJsonKey as exc:
        line = _duplicate_line(text, exc.key)
        where = f"{source}:{line}" if line else source
        raise ConfigError(f"{where}: not valid JSON: duplicate key {exc.key!r}") from None


def _duplicate_line(text: str, key: str) -> str:
    """The line of a duplicate JSON key, found by the YAML reader (JSON is nearly YAML)."""
    try:
        _parse_yaml(text, "")
    except ConfigError as exc:
        match = re.match(r":(\d+): not valid YAML: duplicate key", str(exc))
        if match and repr(key) in str(exc):
            return match.group(1)
    except RecursionError:
        pass
    return ""


def _check_depth(data: Any, source: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`; iterative, so it cannot recurse out."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: nested too deeply (at most {MAX_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in children)
