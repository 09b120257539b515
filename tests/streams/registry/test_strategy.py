"""Subject names for TopicNameStrategy and RecordNameStrategy."""

from __future__ import annotations

import schemas
from streams.registry import record_fullname, subject_name


def test_topic_strategy_is_topic_dash_value() -> None:
    schema = schemas.load("AssetCompleted")
    assert subject_name("topic", "line.completed", schema) == "line.completed-value"


def test_record_strategy_is_the_full_record_name() -> None:
    schema = schemas.load("AssetCompleted")
    assert subject_name("record", "line.completed", schema) == "io.assetline.v1.AssetCompleted"
    assert record_fullname({"name": "a.b.C", "namespace": "ignored"}) == "a.b.C"
    assert record_fullname({"name": "C"}) == "C"
