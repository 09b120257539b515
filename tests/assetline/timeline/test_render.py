"""assetline.timeline.render: the timeline as `assetline status` prints it."""

from __future__ import annotations

import json

from assetline.timeline import RequestIndex, timeline_json, timeline_text
from streams.codecs import Codecs
from tests.support.request_events import TRACE_ID, delivered_story

START = 1_764_763_200_000  # 2025-12-03T12:00:00Z


def _index() -> RequestIndex:
    index = RequestIndex(Codecs.load())
    for r in delivered_story(index.codecs, "r1", START):
        index.apply(r.topic, r.key, r.value, r.headers, r.timestamp)
    return index


def test_text_has_a_heading_and_one_row_per_event() -> None:
    index = _index()
    lines = timeline_text("r1", index.timeline("r1")).splitlines()
    assert lines[0] == f"request r1  tenant acme  campaign spring  trace {TRACE_ID}"
    assert lines[1].startswith("2025-12-03T12:00:00.000Z  +0.000s  requests")
    assert lines[4].split()[:4] == ["2025-12-03T12:00:00.030Z", "+0.030s", "completed", "delivered"]
    assert lines[4].endswith("delivered to file:///deliveries/acme/r1.png")
    assert lines[-1] == "asset: file:///deliveries/acme/r1.png"
    assert timeline_text("nobody", []) == "no events for request 'nobody'"


def test_json_is_the_state_and_every_event() -> None:
    index = _index()
    out = json.loads(json.dumps(timeline_json("r1", index.timeline("r1"), index.state("r1"))))
    assert out["status"] == "DELIVERED"
    assert out["trace_id"] == TRACE_ID
    assert out["in_review"] is False
    assert [e["kind"] for e in out["events"]] == [
        "requested",
        "generated",
        "validated",
        "delivered",
        "completed",
        "webhook",
    ]
    assert out["events"][1]["details"]["provider"] == "offline"
    assert out["events"][0]["at"] == "2025-12-03T12:00:00.000Z"
