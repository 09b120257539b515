"""Which topic a replay reads and which it writes, from short names like ``raw``.

Refusals are deliberate: a topic whose records carry no request cannot get a new attempt, and
writing a record into a line topic that holds another record type would only dead-letter it.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from assetline.replay.rewrite import REPLAYABLE, RecordKind, kind_of
from schemas.errors import AssetlineError
from streams.topics import TopicNames


class TopicChoiceError(AssetlineError, ValueError):
    """A source or target a replay must not use; the message says why and what would work."""

    code = "replay.bad_topic"


@dataclass(frozen=True)
class ReplayTopics:
    source: str
    kind: RecordKind
    target: str


def full_name(names: TopicNames, text: str) -> str:
    """``raw`` -> ``<prefix>.raw``; full names pass through."""
    if text in names.__dataclass_fields__:
        value: str = getattr(names, text)
        return value
    return text


def _line_topics(names: TopicNames) -> dict[str, str]:
    return {getattr(names, f): f for f in names.__dataclass_fields__}


def choose(
    names: TopicNames, topic: str, into: str | None, existing: Container[str]
) -> ReplayTopics:
    """Resolve and check ``--topic`` and ``--into`` against the line and the cluster."""
    source = full_name(names, topic)
    kind = kind_of(names, source)
    replayable = ", ".join(REPLAYABLE)
    if kind is None:
        if source == names.deadletter:
            raise TopicChoiceError(
                f"{source} is the dead-letter topic: use 'assetline dlq replay' to re-drive it"
            )
        if source == names.deliver_deferred:
            raise TopicChoiceError(
                f"{source} holds copies of {names.approved} records waiting for their "
                f"destination (the deliver stage takes them when due): replay approved"
            )
        if source in _line_topics(names):
            raise TopicChoiceError(
                f"cannot replay {source}: its records carry no request to re-attempt "
                f"(replayable: {replayable})"
            )
        raise TopicChoiceError(
            f"unknown topic {topic!r}: not a replayable topic of line "
            f"{names.requests.removesuffix('.requests')!r} "
            f"(replayable: {replayable}, or their full names)"
        )
    if source not in existing:
        raise TopicChoiceError(f"topic {source} does not exist on the cluster")
    if into is None:
        raise TopicChoiceError(
            f"no --into: replaying {source} into itself must be asked for explicitly "
            f"(--into {topic})"
        )
    target = full_name(names, into)
    target_kind = kind_of(names, target)
    if target in _line_topics(names) and target_kind is not kind:
        holds = target_kind.value if target_kind else "no request records"
        raise TopicChoiceError(
            f"cannot replay {source} ({kind.value} records) into {target} ({holds})"
        )
    if target not in existing:
        raise TopicChoiceError(f"unknown topic {into!r}: {target} does not exist on the cluster")
    return ReplayTopics(source, kind, target)
