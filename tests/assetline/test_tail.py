"""assetline.tail: short topic names, the unknown-topic line, and messages as JSON lines."""

from __future__ import annotations

import json

from assetline.tail import render_message, resolve_topic, unknown_topic_error
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.support.assets import make_request


def test_a_short_name_is_the_line_topic_and_anything_else_is_kept() -> None:
    settings = Settings(topic_prefix="p")
    assert resolve_topic(settings, "completed") == "p.completed"
    assert resolve_topic(settings, "review_items") == "p.review.items"
    assert resolve_topic(settings, "orders") == "orders"


def test_unknown_topic_error_names_the_closest_and_the_line_topics() -> None:
    names = TopicNames.with_prefix("assetline")
    existing = {*names.all(), "orders", "__consumer_offsets"}
    line = unknown_topic_error("complete", "complete", names, existing)
    assert "\n" not in line
    assert line.startswith("no topic 'complete'; did you mean 'completed'? line topics: ")
    assert "deadletter" in line
    assert "review_items" in line
    assert "__consumer_offsets" not in line
    assert line.endswith("(and 1 other topic(s))")
    nothing = unknown_topic_error("xyz", "xyz", names, set())
    assert "none yet" in nothing
    assert "did you mean" not in nothing


def test_a_message_shows_its_record_key() -> None:
    names = TopicNames.with_prefix("p")
    out = json.loads(render_message(names.deadletter, names, Codecs.load(), b"junk", [], b"r-7"))
    assert out["key"] == "r-7"
    assert out["value_base64"] == "anVuaw=="
    assert (
        json.loads(render_message(names.deadletter, names, Codecs.load(), b"", [], None))["key"]
        is None
    )


def test_a_line_topic_value_is_decoded_with_its_contract() -> None:
    names = TopicNames.with_prefix("p")
    codecs = Codecs.load()
    data = codecs.request.encode(make_request())
    out = json.loads(render_message(names.requests, names, codecs, data, [], b"r-1"))
    assert out["value"]["request_id"] == "r-1"
    assert "value_base64" not in out
    urgent = json.loads(render_message(names.requests_urgent, names, codecs, data, [], b"r-1"))
    assert urgent["value"]["request_id"] == "r-1"  # HIGH requests' intake holds requests too
    broken = json.loads(render_message(names.requests, names, codecs, b"junk", [("h", b"v")]))
    assert "error" in broken
    assert broken["value_base64"] == "anVuaw=="
