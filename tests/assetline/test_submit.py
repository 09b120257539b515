"""assetline.submit: requests from a JSONL file or from fields, each with an id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assetline.submit import RequestFileError, new_requests, read_requests
from schemas.records import AssetKind

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
