"""Read a campaign's template and segments, and expand them into requests.

The template is a GenerationRequest-shaped document (YAML or JSON) without ``request_id`` or
``idempotency_key``, which are derived (:mod:`assetline.campaign.ids`). Its ``variables`` are
defaults. The segments file (CSV with a header, or JSONL objects) has one row per
persona/locale/...: each column is a variable, except columns named ``@<field>`` (e.g.
``@kind``, ``@brand_profile_id``, ``@constraints.language``, ``@metadata.segment``), which
override that field of the row's request; an empty ``@`` cell overrides nothing.

A campaign's ``priority`` and ``deadline_ms`` (``assetline campaign --priority/--deadline``)
apply to every request without changing its id: the priority replaces the template's (a row's
``@priority`` still wins), and the deadline caps every ``latency_budget_ms`` (a template's or
row's lower budget is kept), so no request is given longer than the campaign.

``${name}`` placeholders are checked for every row: the ``prompt_template`` keeps them (the
line fills it from ``variables``, and records both), every other string is filled here. A
placeholder that no variable answers is an error naming the row and the variable, found before
anything is sent, so a campaign is never half-submitted because of row 9,000.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from assetline.campaign.ids import request_id_for, template_digest
from schemas.errors import AssetlineError
from schemas.records import GenerationRequest, Priority
from streams.config_files import ConfigError, parse_config_text, read_config_text

#: Fields a template may not set: they are derived per row, or set by the line.
DERIVED_FIELDS = frozenset(
    {"request_id", "idempotency_key", "attempt", "feedback", "prior_cost", "created_at"}
)
REQUIRED_FIELDS = ("tenant", "campaign_id", "kind", "prompt_template")
#: ``@`` columns a row may set: top-level fields, and any key under these sections.
OVERRIDE_FIELDS = frozenset(
    {
        "tenant",
        "kind",
        "prompt_template",
        "brand_profile_id",
        "callback_url",
        "latency_budget_ms",
        "priority",
    }
)
OVERRIDE_SECTIONS = frozenset({"constraints", "model", "metadata"})
_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_VARIABLE = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")


class CampaignInputError(AssetlineError, ValueError):
    """A template or segments file the campaign cannot use; the message says where and why."""

    code = "campaign.bad_input"


@dataclass(frozen=True)
class Segment:
    """One row of the segments file: its line number (for errors) and its cells."""

    line: int
    values: dict[str, str]


@dataclass(frozen=True)
class Campaign:
    """The expansion: one request per distinct row, in file order."""

    campaign_id: str
    requests: list[GenerationRequest]
    rows: int
    duplicates: int

    @property
    def request_ids(self) -> list[str]:
        return [r.request_id for r in self.requests]


def load_template(path: Path) -> dict[str, Any]:
    """Parse and check a template file (``.json``, else YAML); raises CampaignInputError.

    Read through the safe config reader: bounded size, no YAML aliases, no duplicate keys.
    """
    suffix = ".json" if path.suffix.lower() == ".json" else ".yaml"
    try:
        document = parse_config_text(read_config_text(path), suffix, str(path))
    except ConfigError as exc:
        raise CampaignInputError(str(exc)) from None
    return check_template(document, str(path))


def check_template(document: Any, source: str = "template") -> dict[str, Any]:
    """The template as a plain dict with string variables, or a CampaignInputError."""
    if not isinstance(document, dict):
        raise CampaignInputError(f"{source}: a template is a mapping of request fields")
    derived = sorted(DERIVED_FIELDS & document.keys())
    if derived:
        raise CampaignInputError(
            f"{source}: {', '.join(derived)} cannot be set in a template (derived per row)"
        )
    unknown = sorted(set(document) - set(GenerationRequest.model_fields))
    if unknown:
        raise CampaignInputError(f"{source}: unknown field(s) {', '.join(map(repr, unknown))}")
    missing = [name for name in REQUIRED_FIELDS if document.get(name) in (None, "")]
    if missing:
        raise CampaignInputError(f"{source}: missing required field(s) {', '.join(missing)}")
    campaign_id = document["campaign_id"]
    if not isinstance(campaign_id, str) or not _CAMPAIGN_ID.fullmatch(campaign_id):
        raise CampaignInputError(
            f"{source}: campaign_id must be letters, digits and . _ : - (it prefixes every "
            f"request id), got {campaign_id!r}"
        )
    if not isinstance(document["prompt_template"], str):
        raise CampaignInputError(f"{source}: prompt_template must be a string")
    defaults = document.get("variables") or {}
    if not isinstance(defaults, dict):
        raise CampaignInputError(f"{source}: variables must be a mapping of name to value")
    checked = dict(document)
    checked["variables"] = {
        str(name): _cell(value, f"{source}: variables.{name}") for name, value in defaults.items()
    }
    return checked


def read_segments(path: Path) -> list[Segment]:
    """Rows of a ``.csv`` (header first) or ``.jsonl`` file; raises CampaignInputError."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as stream:
                rows = _csv_segments(stream, str(path))
        elif suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8-sig") as stream:
                rows = _jsonl_segments(stream, str(path))
        else:
            raise CampaignInputError(
                f"{path}: segments must be a .csv or .jsonl file, not {suffix or 'no suffix'!r}"
            )
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignInputError(f"{path}: cannot read: {exc}") from None
    if not rows:
        raise CampaignInputError(f"{path}: no rows")
    return rows


def _csv_segments(lines: Iterable[str], source: str) -> list[Segment]:
    reader = csv.reader(lines, strict=True)
    rows: list[Segment] = []
    try:
        header = next(reader, None)
        if header is None:
            return rows
        names = [name.strip() for name in header]
        _check_columns(names, f"{source}:{reader.line_num}")
        for cells in reader:
            if not cells or cells == [""]:
                continue  # blank line
            if len(cells) != len(names):
                raise CampaignInputError(
                    f"{source}:{reader.line_num}: {len(cells)} field(s), the header has "
                    f"{len(names)}"
                )
            rows.append(Segment(reader.line_num, dict(zip(names, cells, strict=True))))
    except csv.Error as exc:
        raise CampaignInputError(f"{source}:{reader.line_num}: bad CSV: {exc}") from None
    return rows


def _jsonl_segments(lines: Iterable[str], source: str) -> list[Segment]:
    rows: list[Segment] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CampaignInputError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise CampaignInputError(f"{where}: a row is a JSON object of column to value")
        _check_columns(list(data), where)
        values = {name: _cell(value, f"{where}: {name}") for name, value in data.items()}
        rows.append(Segment(number, values))
    return rows


def _check_columns(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CampaignInputError(f"{where}: column {name!r} appears twice")
        seen.add(name)
        if name.startswith("@"):
            _check_override(name[1:], where)
        elif not _VARIABLE.fullmatch(name):
            raise CampaignInputError(
                f"{where}: column {name!r} is not a variable name (letters, digits, _) "
                "nor an '@field' override"
            )


def _check_override(path: str, where: str) -> None:
    section, dot, key = path.partition(".")
    if (dot and section in OVERRIDE_SECTIONS and key) or (not dot and path in OVERRIDE_FIELDS):
        return
    allowed = sorted(OVERRIDE_FIELDS) + [f"{s}.<key>" for s in sorted(OVERRIDE_SECTIONS)]
    raise CampaignInputError(
        f"{where}: cannot override '@{path}'; overridable: " + ", ".join(f"@{a}" for a in allowed)
    )


def _cell(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise CampaignInputError(f"{where}: a value must be a string or a number, got {value!r}")


@functools.lru_cache(maxsize=4096)
def placeholders(text: str) -> tuple[str, ...]:
    """Names of the ``${name}`` / ``$name`` placeholders in ``text`` (``$$`` is a literal)."""
    if "$" not in text:
        return ()
    return tuple(string.Template(text).get_identifiers())


def expand(
    template: Mapping[str, Any],
    segments: Iterable[Segment],
    *,
    source: str = "segments",
    priority: Priority | None = None,
    deadline_ms: int | None = None,
) -> Campaign:
    """One request per distinct row; rows that repeat an earlier row (same id) collapse.

    ``priority`` and ``deadline_ms`` apply to every request (see the module's docstring); ids
    depend on the template and the row only. Raises CampaignInputError for the first bad row
    (naming it, by ``source:line``), and says how many further rows are bad too, so one run
    finds the size of the problem.
    """
    template = check_template(dict(template), "template")
    campaign_id: str = template["campaign_id"]
    digest = template_digest(template)
    defaults: dict[str, str] = template["variables"]
    body = {k: v for k, v in template.items() if k != "variables"}
    if priority is not None:
        body["priority"] = priority.value
    requests: list[GenerationRequest] = []
    ids: set[str] = set()
    rows = duplicates = 0
    first_error: str | None = None
    more_errors = 0
    for segment in segments:
        rows += 1
        where = f"{source}:{segment.line}"
        request_id = request_id_for(campaign_id, digest, _effective(segment.values))
        if request_id in ids:
            duplicates += 1
            continue
        try:
            request = _request(body, defaults, segment, request_id, where)
        except CampaignInputError as exc:
            if first_error is None:
                first_error = str(exc)
            else:
                more_errors += 1
            continue
        budget = request.latency_budget_ms
        if deadline_ms is not None and (budget is None or budget > deadline_ms):
            request = request.model_copy(update={"latency_budget_ms": deadline_ms})
        ids.add(request_id)
        requests.append(request)
    if first_error is not None:
        tail = f" (and {more_errors} more bad row(s))" if more_errors else ""
        raise CampaignInputError(first_error + tail)
    return Campaign(campaign_id, requests, rows, duplicates)


def _effective(values: Mapping[str, str]) -> dict[str, str]:
    """The row as it affects the request: an empty ``@`` cell overrides nothing, so it does
    not change the id (a CSV with sparse override columns and a JSONL without them agree)."""
    return {k: v for k, v in values.items() if v != "" or not k.startswith("@")}


def _request(
    body: Mapping[str, Any],
    defaults: Mapping[str, str],
    segment: Segment,
    request_id: str,
    where: str,
) -> GenerationRequest:
    variables = dict(defaults)
    overrides: list[tuple[str, str]] = []
    for name, value in segment.values.items():
        if name.startswith("@"):
            if value != "":
                overrides.append((name[1:], value))
        else:
            variables[name] = value
    document: dict[str, Any] = {
        k: v if k == "prompt_template" else _fill(v, variables, where, k) for k, v in body.items()
    }
    for path, value in overrides:
        _set_path(document, path, _fill(value, variables, where, f"@{path}"), where)
    prompt = document["prompt_template"]
    for name in placeholders(prompt):
        if name not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise CampaignInputError(
                f"{where}: unknown placeholder ${{{name}}} in prompt_template "
                f"(the row's variables: {known})"
            )
    if isinstance(document.get("priority"), str):  # low, normal, high in any case
        document["priority"] = document["priority"].upper()
    document["request_id"] = request_id
    document["idempotency_key"] = request_id
    document["variables"] = variables
    try:
        return GenerationRequest.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "request"
        raise CampaignInputError(f"{where}: {field}: {first['msg']}") from None


def _fill(node: Any, variables: Mapping[str, str], where: str, field: str) -> Any:
    """``node`` with every string's placeholders filled; unknown ones are errors."""
    if isinstance(node, str):
        names = placeholders(node)
        if not names:
            return node
        for name in names:
            if name not in variables:
                raise CampaignInputError(
                    f"{where}: unknown placeholder ${{{name}}} in {field} "
                    f"(the row's variables: {', '.join(sorted(variables)) or 'none'})"
                )
        return string.Template(node).safe_substitute(variables)
    if isinstance(node, dict):
        return {k: _fill(v, variables, where, f"{field}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, variables, where, f"{field}[{i}]") for i, v in enumerate(node)]
    return node


def _set_path(document: dict[str, Any], path: str, value: str, where: str) -> None:
    section, dot, key = path.partition(".")
    if not dot:
        document[path] = value
        return
    current = document.get(section)
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise CampaignInputError(f"{where}: @{path}: the template's {section} is not a mapping")
    document[section] = {**current, key: value}
