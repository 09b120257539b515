"""Expansion of a template x segments: variables, overrides, stable ids, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assetline.campaign import (
    CampaignInputError,
    Segment,
    expand,
    load_template,
    read_segments,
)
from schemas.records import AssetKind, Priority

TEMPLATE: dict[str, Any] = {
    "tenant": "acme",
    "campaign_id": "spring",
    "kind": "TEXT",
    "prompt_template": "Headline for ${persona} in ${locale} about ${product}",
    "variables": {"product": "the bottle"},
    "constraints": {"max_chars": 280, "language": "${locale}"},
}


def rows(*values: dict[str, str]) -> list[Segment]:
    return [Segment(i + 2, dict(v)) for i, v in enumerate(values)]


def test_each_row_becomes_a_request_with_its_variables_and_filled_fields() -> None:
    campaign = expand(
        TEMPLATE,
        rows({"persona": "runner", "locale": "de-DE"}, {"persona": "gamer", "locale": "en-GB"}),
    )
    assert campaign.rows == 2
    assert campaign.duplicates == 0
    first, second = campaign.requests
    assert first.variables == {"product": "the bottle", "persona": "runner", "locale": "de-DE"}
    assert first.prompt_template == TEMPLATE["prompt_template"]  # the line fills the prompt
    assert first.constraints.language == "de-DE"  # every other field is filled here
    assert second.constraints.language == "en-GB"
    assert first.request_id.startswith("spring-")
    assert first.idempotency_key == first.request_id
    assert first.request_id != second.request_id


def test_ids_are_stable_across_runs_and_key_order() -> None:
    a = expand(TEMPLATE, rows({"persona": "runner", "locale": "de-DE"}))
    b = expand(dict(reversed(TEMPLATE.items())), rows({"locale": "de-DE", "persona": "runner"}))
    assert a.request_ids == b.request_ids


def test_changing_the_template_or_the_row_changes_the_id() -> None:
    base = expand(TEMPLATE, rows({"persona": "runner", "locale": "de-DE"})).request_ids
    other_row = expand(TEMPLATE, rows({"persona": "runner", "locale": "fr-FR"})).request_ids
    other_template = expand(
        {**TEMPLATE, "constraints": {"max_chars": 100}}, rows({"persona": "runner", "locale": "x"})
    ).request_ids
    assert len({base[0], other_row[0], other_template[0]}) == 3


def test_duplicate_rows_collapse_into_one_request() -> None:
    row = {"persona": "runner", "locale": "de-DE"}
    campaign = expand(TEMPLATE, rows(row, {"persona": "gamer", "locale": "de-DE"}, row))
    assert campaign.rows == 3
    assert campaign.duplicates == 1
    assert len(campaign.requests) == 2


def test_row_variables_override_template_defaults() -> None:
    (request,) = expand(
        TEMPLATE, rows({"persona": "p", "locale": "l", "product": "the mug"})
    ).requests
    assert request.variables["product"] == "the mug"


def test_override_columns_set_request_fields_and_empty_cells_set_nothing() -> None:
    campaign = expand(
        TEMPLATE,
        rows(
            {
                "persona": "p",
                "locale": "en-GB",
                "@kind": "IMAGE",
                "@constraints.width": "512",
                "@metadata.segment": "${persona}-vip",
            },
            {"persona": "q", "locale": "en-GB", "@kind": "", "@constraints.width": ""},
        ),
    )
    image, text = campaign.requests
    assert image.kind is AssetKind.IMAGE
    assert image.constraints.width == 512
    assert image.constraints.max_chars == 280  # the template's other constraints stay
    assert image.metadata == {"segment": "p-vip"}
    assert text.kind is AssetKind.TEXT
    assert text.constraints.width is None
    assert "@kind" not in text.variables
    assert "@kind" not in image.variables


def test_empty_override_cells_do_not_change_the_id() -> None:
    sparse = expand(TEMPLATE, rows({"persona": "p", "locale": "l", "@kind": ""}))
    plain = expand(TEMPLATE, rows({"persona": "p", "locale": "l"}))
    assert sparse.request_ids == plain.request_ids


def test_a_campaign_priority_and_deadline_reach_every_request_without_changing_ids() -> None:
    segments = rows({"persona": "p", "locale": "l"}, {"persona": "q", "locale": "l"})
    plain = expand(TEMPLATE, segments)
    assert {r.priority for r in plain.requests} == {Priority.NORMAL}
    assert {r.latency_budget_ms for r in plain.requests} == {None}
    given = expand(TEMPLATE, segments, priority=Priority.LOW, deadline_ms=86_400_000)
    assert given.request_ids == plain.request_ids  # a re-run with a new deadline: same ids
    assert {r.priority for r in given.requests} == {Priority.LOW}
    assert {r.latency_budget_ms for r in given.requests} == {86_400_000}


def test_the_campaign_priority_replaces_the_templates_and_a_rows_wins() -> None:
    template = {**TEMPLATE, "priority": "high"}  # any case, like --priority
    segments = rows(
        {"persona": "p", "locale": "l"},
        {"persona": "hero", "locale": "l", "@priority": "HIGH"},
        {"persona": "q", "locale": "l", "@priority": ""},
    )
    assert [r.priority for r in expand(template, segments).requests] == [Priority.HIGH] * 3
    lowered = expand(template, segments, priority=Priority.LOW).requests
    assert [r.priority for r in lowered] == [Priority.LOW, Priority.HIGH, Priority.LOW]


def test_the_campaign_deadline_caps_budgets_and_keeps_lower_ones() -> None:
    template = {**TEMPLATE, "latency_budget_ms": 120_000}
    segments = rows(
        {"persona": "p", "locale": "l"},
        {"persona": "tight", "locale": "l", "@latency_budget_ms": "20000"},
        {"persona": "long", "locale": "l", "@latency_budget_ms": "900000"},
    )
    budgets = [r.latency_budget_ms for r in expand(template, segments).requests]
    assert budgets == [120_000, 20_000, 900_000]
    capped = expand(template, segments, deadline_ms=60_000).requests
    assert [r.latency_budget_ms for r in capped] == [60_000, 20_000, 60_000]


def test_a_bad_priority_cell_names_the_row() -> None:
    with pytest.raises(
        CampaignInputError, match=r"segments:2: priority: Input should be .LOW., .NORMAL. or .HIGH."
    ):
        expand(TEMPLATE, rows({"persona": "p", "locale": "l", "@priority": "urgent"}))


def test_unknown_placeholder_names_the_row_and_the_variable() -> None:
    with pytest.raises(CampaignInputError) as caught:
        expand(TEMPLATE, rows({"persona": "p", "locale": "l"}, {"persona": "q"}), source="s.csv")
    message = str(caught.value)
    assert message.startswith("s.csv:3: unknown placeholder ${locale}")
    assert "constraints.language" in message or "prompt_template" in message


def test_unknown_placeholder_in_the_prompt_is_an_error_although_the_line_would_keep_it() -> None:
    template = {**TEMPLATE, "constraints": {}, "prompt_template": "Hi $name, ${persona}"}
    with pytest.raises(CampaignInputError, match=r"s:2: unknown placeholder \$\{name\} in prompt"):
        expand(template, rows({"persona": "p"}), source="s")


def test_literal_dollars_are_not_placeholders() -> None:
    template = {**TEMPLATE, "constraints": {}, "prompt_template": "Save $$5 or $5, ${persona}"}
    (request,) = expand(template, rows({"persona": "p"})).requests
    assert request.prompt_template == "Save $$5 or $5, ${persona}"


def test_every_bad_row_is_counted_but_the_first_is_named() -> None:
    with pytest.raises(CampaignInputError, match=r"^s:2: .* \(and 2 more bad row\(s\)\)$"):
        expand(TEMPLATE, rows({"persona": "a"}, {"persona": "b"}, {"persona": "c"}), source="s")


def test_an_invalid_field_value_names_the_row_and_field() -> None:
    with pytest.raises(CampaignInputError, match=r"^s:2: constraints.width: "):
        expand(
            TEMPLATE,
            rows({"persona": "p", "locale": "l", "@constraints.width": "wide"}),
            source="s",
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"request_id": "x"}, "request_id cannot be set in a template"),
        ({"kindd": "TEXT"}, "unknown field(s) 'kindd'"),
        ({"campaign_id": None}, "missing required field(s) campaign_id"),
        ({"campaign_id": "a b"}, "campaign_id must be"),
        ({"variables": ["a"]}, "variables must be a mapping"),
        ({"variables": {"a": {"b": 1}}}, "variables.a: a value must be a string or a number"),
    ],
)
def test_bad_templates_are_reported(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CampaignInputError) as caught:
        expand({**TEMPLATE, **change}, rows({"persona": "p", "locale": "l"}))
    assert message in str(caught.value)


def test_template_files_in_yaml_and_json_give_the_same_ids(tmp_path: Path) -> None:
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps(TEMPLATE))
    as_yaml = tmp_path / "t.yaml"
    as_yaml.write_text(
        "campaign_id: spring\ntenant: acme\nkind: TEXT\n"
        'prompt_template: "Headline for ${persona} in ${locale} about ${product}"\n'
        "variables: {product: the bottle}\n"
        'constraints: {language: "${locale}", max_chars: 280}\n'
    )
    segments = rows({"persona": "p", "locale": "l"})
    assert (
        expand(load_template(as_json), segments).request_ids
        == expand(load_template(as_yaml), segments).request_ids
    )


@pytest.mark.parametrize(
    ("name", "text", "after_path"),
    [
        ("t.yaml", "tenant: acme\nkind: [a\nprompt: x\n", ":3: not valid YAML"),
        ("t.json", '{"tenant": "a",\n  oops}', ":2: not valid JSON"),
        ("t.yaml", "- just\n- a list\n", ": a template is a mapping"),
        ("t.yaml", "tenant: acme\ntenant: evil\n", ":2: not valid YAML: duplicate key 'tenant'"),
        ("t.yaml", "tenant: &t acme\ncampaign_id: *t\n", ":1: not valid YAML: YAML anchor &t"),
        ("t.json", '{"tenant": "a",\n "tenant": "b"}', ":2: not valid JSON: duplicate key"),
    ],
)
def test_unparseable_templates_say_where(
    tmp_path: Path, name: str, text: str, after_path: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CampaignInputError) as caught:
        load_template(path)
    assert str(caught.value).startswith(f"{path}{after_path}")


def test_csv_segments_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text('persona,locale\nrunner,de-DE\n\n"gamer, retro",en-GB\n')
    segments = read_segments(path)
    assert segments == [
        Segment(2, {"persona": "runner", "locale": "de-DE"}),
        Segment(4, {"persona": "gamer, retro", "locale": "en-GB"}),
    ]


def test_jsonl_segments_turn_numbers_into_strings(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"persona": "runner", "age": 42}\n\n{"persona": "x", "@kind": "IMAGE"}\n')
    assert read_segments(path) == [
        Segment(1, {"persona": "runner", "age": "42"}),
        Segment(3, {"persona": "x", "@kind": "IMAGE"}),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("s.csv", "persona,locale\na,b\nc\n", "s.csv:3: 1 field(s), the header has 2"),
        ("s.csv", 'persona,locale\na,"b\n', "s.csv:2: bad CSV"),
        ("s.csv", "persona,persona\na,b\n", "s.csv:1: column 'persona' appears twice"),
        ("s.csv", "per sona\na\n", "s.csv:1: column 'per sona' is not a variable name"),
        ("s.csv", "persona,@request_id\na,b\n", "s.csv:1: cannot override '@request_id'"),
        ("s.csv", "persona\n", "s.csv: no rows"),
        ("s.jsonl", '{"persona": "a"}\n{"persona": [1]}\n', "s.jsonl:2: persona: a value"),
        ("s.jsonl", '{"persona": "a"}\nnot json\n', "s.jsonl:2: not valid JSON"),
        ("s.jsonl", "[1, 2]\n", "s.jsonl:1: a row is a JSON object"),
        ("s.txt", "persona\n", "segments must be a .csv or .jsonl file"),
    ],
)
def test_bad_segments_files_say_where(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CampaignInputError) as caught:
        read_segments(path)
    assert str(caught.value).startswith(str(tmp_path) + "/")
    assert message in str(caught.value)


def test_non_utf8_segments_are_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b"persona\n\xff\xfe\xfa\n")
    with pytest.raises(CampaignInputError, match="cannot read"):
        read_segments(path)


def test_ten_thousand_rows_expand_quickly() -> None:
    import time

    segments = rows(*({"persona": f"p{i}", "locale": "en-GB"} for i in range(10_000)))
    started = time.perf_counter()
    campaign = expand(TEMPLATE, segments)
    assert len(set(campaign.request_ids)) == 10_000
    assert time.perf_counter() - started < 5.0  # ~0.5 s here; generous for slow CI
