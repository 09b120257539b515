"""Reading a topic for a person: which topic a short name means, and each message as JSON.

``assetline tail`` calls these and prints. A line topic may be named by its short form
(``completed``); values of the line's topics are decoded with their contract, anything else
is shown as base64 with its headers.
"""

from __future__ import annotations

import base64
import difflib
import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from schemas.errors import AssetlineError
from streams.codecs import CodecError, Codecs, SingleObjectCodec
from streams.dead_letters import header_map
from streams.kafka_security import client_kwargs, start_client
from streams.settings import Settings
from streams.topics import TopicNames


class UnknownTopicError(AssetlineError):
    """The topic to read does not exist; the message offers the closest name."""

    code = "tail.unknown_topic"


def resolve_topic(settings: Settings, topic: str) -> str:
    """The full name of ``topic``: a line topic's short form expanded, anything else as is."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    return getattr(names, topic, topic) if topic in names.__dataclass_fields__ else topic


def unknown_topic_error(asked: str, name: str, names: TopicNames, existing: set[str]) -> str:
    """One line for a topic that does not exist: the closest name, then the line's topics.

    Pure, so the wording is tested without a broker. The line's topics are offered in the
    short form ``tail`` takes (``completed``); other topics only count, or are suggested
    when one is closest.
    """
    short = {full: field for field, full in vars(names).items()}
    line = sorted(short[t] for t in existing if t in short)
    others = sorted(t for t in existing if t not in short and not t.startswith("__"))
    close = difflib.get_close_matches(asked, line + others, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(line) if line else "none yet (run 'assetline topics' or a worker)"
    more = f" (and {len(others)} other topic(s))" if others else ""
    return f"no topic {name!r}{hint} line topics: {listed}{more}"


def render_message(
    topic: str,
    names: TopicNames,
    codecs: Codecs,
    value: bytes,
    headers: Any,
    key: bytes | None = None,
) -> str:
    """One message as a JSON line; undecodable values are shown as base64 with the error.

    The key is shown too: on ``.deadletter`` it is the only readable trace of whose message
    a malformed value was.
    """
    by_topic: dict[str, SingleObjectCodec[Any]] = {
        names.requests: codecs.request,
        names.requests_urgent: codecs.request,
        names.raw: codecs.raw,
        names.approved: codecs.validated,
        names.rejected: codecs.validated,
        names.completed: codecs.completed,
        names.deliver_deferred: codecs.validated,
        names.alerts: codecs.alert,
        names.review: codecs.validated,
        names.review_decisions: codecs.review_decision,
        names.review_items: codecs.review_item,
        names.webhooks: codecs.webhook_job,
        names.shadows: codecs.validated,
    }
    codec = by_topic.get(topic)
    out: dict[str, Any] = {
        "topic": topic,
        "key": None if key is None else key.decode("utf-8", "backslashreplace"),
    }
    if codec is not None:
        try:
            out["value"] = codec.decode(value).model_dump(mode="json")
        except CodecError as exc:
            out["error"] = str(exc)
    if "value" not in out:
        out["value_base64"] = base64.b64encode(value or b"").decode()
        out["headers"] = header_map(headers)
    return json.dumps(out, ensure_ascii=False)


async def tail_topic(
    settings: Settings,
    asked: str,
    name: str,
    on_message: Callable[[ConsumerRecord[bytes, bytes]], None],
    *,
    from_beginning: bool,
    limit: int | None,
    idle_timeout: float,
) -> int:
    """Hand each message of topic ``name`` to ``on_message`` until ``limit`` messages, or
    ``idle_timeout`` seconds without one; the number handed.

    Raises :class:`UnknownTopicError` (naming ``asked``'s closest match) when the topic does
    not exist.
    """
    names = TopicNames.with_prefix(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await start_client(consumer, settings)
    printed = 0
    try:
        # Checked before subscribing: a consumer on a missing topic waits (and warns) for
        # it to appear, which looked like a hang for a typo.
        existing = await consumer.topics()
        if name not in existing:
            raise UnknownTopicError(unknown_topic_error(asked, name, names, existing))
        consumer.subscribe([name])
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=int(idle_timeout * 1000))
            if not batch:
                break
            for messages in batch.values():
                for m in messages:
                    on_message(m)
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await consumer.stop()
    return printed
