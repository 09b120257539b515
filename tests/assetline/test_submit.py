"""assetline.submit: requests from a JSONL file or from fields, each with an id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assetline.submit import (
    MAX_DEADLINE_MS,
    RequestFileError,
    RequestOptionError,
    new_requests,
    parse_deadline,
    parse_priority,
    read_requests,
)
from schemas.records import AssetKind, Priority

GOOD = {"tenant": "t", "campaign_id": "c", "kind": "TEXT", "prompt_template": "hi"}


def test_a_file_gives_one_request_per_line_with_ids_added(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    given = {**GOOD, "request_id": "mine", "idempotency_key": "k"}
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(given) + "\n", encoding="utf-8")
    first, second = read_requests(path)
    assert first.idempotency_key == first.request_id
    assert (second.request_id, second.idempotency_key) == ("mine", "k")


@pytest.mark.parametrize(
    "bad", ['{"tenant": "t", "kind": "PAINTING"}', "not json", "[1, 2]", '"text"']
)
def test_a_bad_line_is_named_by_file_and_number(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(RequestFileError) as caught:
        read_requests(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: not a valid request: ")
    assert "\n" not in message


def test_new_requests_each_get_a_fresh_id() -> None:
    requests = new_requests(
        3, tenant="t", campaign_id="c", kind=AssetKind.TEXT, prompt_template="x"
    )
    assert len({r.request_id for r in requests}) == 3
    assert all(r.idempotency_key == r.request_id for r in requests)
    assert {r.tenant for r in requests} == {"t"}


def test_a_files_priority_is_read_and_an_old_line_without_one_is_normal(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    hero = {**GOOD, "priority": "HIGH", "latency_budget_ms": 90_000}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(hero) + "\n", encoding="utf-8")
    plain, urgent = read_requests(path)
    assert (plain.priority, plain.latency_budget_ms) == (Priority.NORMAL, None)
    assert (urgent.priority, urgent.latency_budget_ms) == (Priority.HIGH, 90_000)


@pytest.mark.parametrize(
    ("text", "priority"),
    [("low", Priority.LOW), ("NORMAL", Priority.NORMAL), (" High ", Priority.HIGH)],
)
def test_priorities(text: str, priority: Priority) -> None:
    assert parse_priority(text) is priority


@pytest.mark.parametrize("text", ["", "urgent", "1", "hi"])
def test_bad_priorities_name_the_choices(text: str) -> None:
    with pytest.raises(
        RequestOptionError, match=r"not a priority: .* \(one of low, normal, high\)"
    ):
        parse_priority(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("90s", 90_000),
        ("30m", 1_800_000),
        ("24h", 86_400_000),
        ("1h30m", 5_400_000),
        ("2m30s", 150_000),
        ("500ms", 500),
        ("1ms", 1),
        ("30M", 1_800_000),
        ("596h31m23s647ms", MAX_DEADLINE_MS),
    ],
)
def test_deadlines_in_milliseconds(text: str, ms: int) -> None:
    assert parse_deadline(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "90",  # seconds or milliseconds? a unit is required
        "1.5h",
        "-5m",
        "+5m",
        "30 m",
        "1h 30m",
        "30x",
        "m30",
        "30mm",
        "1s1h",  # units largest first
        "5m5m",
        "1e3s",
        "inf",
        "nan",
        "\u0663s",  # an Arabic-Indic digit: int() would take it
        "9" * 40 + "s",
    ],
)
def test_bad_deadlines_are_one_line_errors(text: str) -> None:
    with pytest.raises(RequestOptionError, match="not a deadline") as caught:
        parse_deadline(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["0s", "0ms", "0h0m", "596h31m23s648ms", "600h", "9999999h"])
def test_deadlines_out_of_range_are_refused(text: str) -> None:
    with pytest.raises(
        RequestOptionError, match=r"out of range: more than 0 and at most 2147483647"
    ):
        parse_deadline(text)


def test_option_errors_are_assetline_errors_with_a_code() -> None:
    assert issubclass(RequestOptionError, ValueError)
    assert RequestOptionError.code == "submit.bad_option"
