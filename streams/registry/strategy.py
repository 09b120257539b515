"""Subject naming: which registry subject a topic's value schema is registered under.

The two Confluent strategies a line needs: TopicNameStrategy (``<topic>-value``, one schema
lineage per topic, Confluent's default) and RecordNameStrategy (``<namespace>.<name>``, one
lineage per record type across topics).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class SubjectStrategy(StrEnum):
    TOPIC = "topic"
    RECORD = "record"


def record_fullname(schema: dict[str, Any]) -> str:
    """``namespace.name`` of a named schema (a dotted name is already full)."""
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def subject_name(strategy: SubjectStrategy | str, topic: str, schema: dict[str, Any]) -> str:
    """The value subject for ``schema`` written to ``topic``."""
    if SubjectStrategy(strategy) is SubjectStrategy.TOPIC:
        return f"{topic}-value"
    return record_fullname(schema)
