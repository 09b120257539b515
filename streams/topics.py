"""Topic names, their configs, and creating them before a worker starts.

Topics are created here with the admin client (not by Faust) because Faust's own CreateTopics
request is too old for Kafka 4.x, and because the line relies on every line topic having the
same partition count: records are keyed by request_id everywhere, so partition *p* of
``.approved`` and partition *p* of ``.completed`` hold the same requests. That is what lets the
deliver stage use ``.completed`` itself as its exactly-once ledger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, NodeNotReadyError, TopicAlreadyExistsError

from schemas.errors import AssetlineError
from schemas.records import Priority
from streams.kafka_security import bootstrap_of, client_kwargs, start_client
from streams.settings import Settings

log = logging.getLogger(__name__)

#: DescribeConfigs' source of a config set on the topic itself (not a broker default).
_DYNAMIC_TOPIC_CONFIG = 1


@dataclass(frozen=True)
class TopicNames:
    """The topics of the line, named ``<prefix>.<stage output>``."""

    requests: str
    #: HIGH requests' own intake: see :meth:`requests_for`.
    requests_urgent: str
    raw: str
    approved: str
    rejected: str
    completed: str
    #: Deliveries put off while their destination had its bound of deliveries waiting.
    deliver_deferred: str
    deadletter: str
    alerts: str
    spend: str
    spend_judge: str
    spend_shadow: str
    shadows: str
    review: str
    review_decisions: str
    review_items: str
    webhooks: str
    webhooks_disabled: str
    generations: str
    judgements: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        return cls(
            requests=f"{prefix}.requests",
            requests_urgent=f"{prefix}.requests.urgent",
            raw=f"{prefix}.raw",
            approved=f"{prefix}.approved",
            rejected=f"{prefix}.rejected",
            completed=f"{prefix}.completed",
            deliver_deferred=f"{prefix}.deliver.deferred",
            deadletter=f"{prefix}.deadletter",
            alerts=f"{prefix}.alerts",
            spend=f"{prefix}.spend",
            spend_judge=f"{prefix}.spend.judge",
            spend_shadow=f"{prefix}.spend.shadow",
            shadows=f"{prefix}.shadows",
            review=f"{prefix}.review",
            review_decisions=f"{prefix}.review.decisions",
            review_items=f"{prefix}.review.items",
            webhooks=f"{prefix}.webhooks",
            webhooks_disabled=f"{prefix}.webhooks.disabled",
            generations=f"{prefix}.generations",
            judgements=f"{prefix}.judgements",
        )

    def request_topics(self) -> tuple[str, str]:
        """Every topic a request (or a re-generation) may be written to: a reader of requests
        (watchdog, sweep, tail, timeline, replay) reads both."""
        return (self.requests, self.requests_urgent)

    def requests_for(self, priority: Priority | str) -> str:
        """Where a request goes: HIGH to ``.requests.urgent``, the rest to ``.requests``.

        Kafka has no priority: a HIGH record behind 10,000 NORMAL ones on one partition is
        taken only after them (0.9-2 s, issue 16). On a topic of its own, co-partitioned with
        ``.requests``, the generate stage takes it at once and its pool runs it first. The
        topic decides only the intake order; a record's priority is whatever its value says.
        """
        return self.requests_urgent if priority == Priority.HIGH else self.requests

    def compacted(self) -> tuple[str, ...]:
        """Topics whose latest value per key is all that matters: table changelogs, and the
        endpoints disabled by a 410 Gone (read whole by every notify worker at start)."""
        return (
            self.spend,
            self.spend_judge,
            self.spend_shadow,
            self.review_items,
            self.webhooks_disabled,
        )

    def paid_calls(self) -> tuple[str, ...]:
        """Records of finished paid calls (generations, judge verdicts), reused when an event
        comes round again (agents/inference/paid_once.py)."""
        return (self.generations, self.judgements)

    def all(self) -> tuple[str, ...]:
        return (
            self.requests,
            self.requests_urgent,
            self.raw,
            self.approved,
            self.rejected,
            self.completed,
            self.deliver_deferred,
            self.alerts,
            self.deadletter,
            self.spend,
            self.spend_judge,
            self.spend_shadow,
            self.shadows,
            self.review,
            self.review_decisions,
            self.review_items,
            self.webhooks,
            self.webhooks_disabled,
            self.generations,
            self.judgements,
        )

    def webhook_retry(self, tier: int) -> str:
        """Retry topic ``tier`` (from 1): every job in it waits the same delay, so its
        records come due in the order they were written and one consumer can sleep on each."""
        return f"{self.webhooks}.retry.{tier}"


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it must exist on the cluster."""

    name: str
    partitions: int
    replication: int
    config: Mapping[str, str] = field(default_factory=dict)
    #: Configs an existing topic must have too: :func:`ensure_topics` alters it to ``config``.
    enforced: tuple[str, ...] = ()


class TopicMismatchError(AssetlineError, RuntimeError):
    """An existing topic has a partition count the line cannot work with."""

    code = "topics.mismatch"


def line_topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic a worker needs; all line topics share one partition count on purpose."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    # The producers' max_request_size is the same number (streams.app, assetline.client).
    size = {"max.message.bytes": str(settings.max_message_bytes)}
    retention = {
        "cleanup.policy": "delete",
        "retention.ms": str(settings.topic_retention_ms),
        **size,
    }
    specs = [
        TopicSpec(name, settings.topic_partitions, settings.topic_replication, retention)
        for name in names.all()
        if name not in (names.deadletter, *names.paid_calls(), names.completed, *names.compacted())
    ]
    # The completions are the deliver ledger's changelog (agents/deliver/ledger.py), so they
    # are compacted: a request's latest completion is kept for good, and a replay or a
    # redelivery years later still finds it. min.compaction.lag.ms keeps every completion,
    # superseded or not, readable as an event stream for the line's retention, as before.
    # An existing topic with delete retention is altered (it would forget completions).
    specs.append(
        TopicSpec(
            names.completed,
            settings.topic_partitions,
            settings.topic_replication,
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": str(settings.topic_retention_ms),
                **size,
            },
            enforced=("cleanup.policy",),
        )
    )
    specs.append(
        TopicSpec(
            names.deadletter,
            settings.topic_partitions,
            settings.topic_replication,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.deadletter_retention_ms),
                **size,
            },
        )
    )
    specs.extend(
        TopicSpec(names.webhook_retry(tier), settings.topic_partitions, settings.topic_replication,
                  retention)
        for tier in range(1, len(settings.webhook_schedule_s))
    )  # fmt: skip
    # Finished paid calls (one key per request and attempt), kept for reuse after a crash:
    # compacted, and deleted after a retention well above any redelivery window.
    specs.extend(
        TopicSpec(
            name,
            settings.topic_partitions,
            settings.topic_replication,
            {
                "cleanup.policy": "compact,delete",
                "retention.ms": str(settings.generation_record_retention_ms),
                **size,
            },
        )
        for name in names.paid_calls()
    )
    # Only the latest value per key matters (a spend total, a review item, a disabled endpoint).
    specs.extend(
        TopicSpec(
            name,
            settings.topic_partitions,
            settings.topic_replication,
            {"cleanup.policy": "compact", **size},
        )
        for name in names.compacted()
    )
    return specs


async def ensure_topics(
    kafka: Settings | str, specs: Iterable[TopicSpec], *, timeout: float = 30.0
) -> list[str]:
    """Create missing topics; check existing ones. Returns the names created.

    ``kafka``: the line's settings (bootstrap and security), or a PLAINTEXT bootstrap string.

    A broker of a cluster that just died is still in the metadata for a few seconds, and
    aiokafka's admin client sends each request to one node (random, or a topic's leader)
    without trying another: NodeNotReadyError. Done again with a fresh client (and metadata),
    within ``timeout`` - seen with a worker started while a node of three was down.
    """
    specs = list(specs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await _ensure_topics_once(kafka, specs, timeout)
        except NodeNotReadyError as exc:
            if loop.time() + _NODE_RETRY_S >= deadline:
                raise
            log.info("topics: %s; asking again", exc)
            await asyncio.sleep(_NODE_RETRY_S)


_NODE_RETRY_S = 0.5


async def _ensure_topics_once(
    kafka: Settings | str, specs: list[TopicSpec], timeout: float
) -> list[str]:
    bootstrap = bootstrap_of(kafka)
    admin = AIOKafkaAdminClient(**client_kwargs(kafka), request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(start_client(admin, kafka), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        if missing:
            new = [
                NewTopic(s.name, s.partitions, s.replication, topic_configs=dict(s.config))
                for s in missing
            ]
            try:
                response = await admin.create_topics(new, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                response = None  # another worker won the race; checked below
            errors = _create_errors(response)
            if errors:
                raise TopicMismatchError(f"could not create topics: {errors}")
            created = [s.name for s in missing]
        described = await _wait_ready(admin, [s.name for s in specs], timeout)
        _check_partitions(specs, described)
        await _enforce_configs(admin, [s for s in specs if s.enforced], bootstrap, timeout)
        return created
    finally:
        await admin.close()


async def _enforce_configs(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], bootstrap: str, timeout: float
) -> list[str]:
    """Alter existing topics whose enforced configs differ; returns the names altered.

    aiokafka has only the legacy AlterConfigs, which replaces every config set on the topic,
    so the topic's own configs are read first and sent back with the line's on top. A broker
    that refuses (no ALTER_CONFIGS permission) stops the worker with the command to run.
    """
    if not specs:
        return []
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    current = await _describe_configs(admin, resources, timeout)
    altered: list[str] = []
    for spec in specs:
        have = current.get(spec.name, {})
        values = {k: value for k, (value, _) in have.items()}
        wrong = {k: values.get(k) for k in spec.enforced if values.get(k) != spec.config[k]}
        if not wrong:
            continue
        own = {
            k: value
            for k, (value, source) in have.items()
            if source == _DYNAMIC_TOPIC_CONFIG and value is not None
        }
        configs = {**own, **spec.config}
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=configs)]
        )
        errors = [r for response in responses for r in response.resources if r[0] != 0]
        if errors:
            wanted = ",".join(f"{k}={spec.config[k]}" for k in spec.config)
            raise TopicMismatchError(
                f"{spec.name} has {_show(wrong)} and the line could not alter it "
                f"({errors[0][1] or f'error code {errors[0][0]}'}); run: kafka-configs.sh "
                f"--bootstrap-server {bootstrap} --alter --entity-type topics --entity-name "
                f"{spec.name} --add-config {wanted}"
            )
        log.warning("Altered %s: %s -> %s", spec.name, _show(wrong), _show(spec.config))
        altered.append(spec.name)
    if altered:
        await _wait_configs(admin, [s for s in specs if s.name in altered], timeout)
    return altered


async def _wait_configs(admin: AIOKafkaAdminClient, specs: list[TopicSpec], timeout: float) -> None:
    """Until the broker reports the altered configs (KRaft applies them a moment later)."""
    deadline = asyncio.get_running_loop().time() + timeout
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    while True:
        current = await _describe_configs(admin, resources, timeout)
        if all(
            current[s.name].get(k, (None, 0))[0] == s.config[k] for s in specs for k in s.enforced
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicMismatchError(f"altered topic configs not applied after {timeout}s")
        await asyncio.sleep(0.1)


#: DescribeConfigs' error for a topic the answering broker does not know (yet).
_UNKNOWN_TOPIC = 3


async def _describe_configs(
    admin: AIOKafkaAdminClient, resources: list[ConfigResource], timeout: float
) -> dict[str, dict[str, tuple[str | None, int]]]:
    """The topics' configs, asked again while the answering broker does not know a topic yet.

    The admin client asks one broker; on a cluster, a topic created a moment ago may not have
    reached that broker's metadata (seen in tests/integration/test_cluster.py, one run in three:
    'could not read the configs of ...completed').
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        configs, unknown = _topic_configs(await admin.describe_configs(resources))
        if not unknown:
            return configs
        if loop.time() + _NODE_RETRY_S >= deadline:
            raise TopicMismatchError(f"could not read the configs of {unknown[0]}: unknown topic")
        await asyncio.sleep(_NODE_RETRY_S)


def _topic_configs(
    responses: list[Any],
) -> tuple[dict[str, dict[str, tuple[str | None, int]]], list[str]]:
    """DescribeConfigs (v1+) answers -> (topic -> config name -> (value, source), the topics
    the answering broker does not know)."""
    configs: dict[str, dict[str, tuple[str | None, int]]] = {}
    unknown: list[str] = []
    for response in responses:
        for error_code, message, _type, name, entries in response.resources:
            if error_code == _UNKNOWN_TOPIC:
                unknown.append(name)
                continue
            if error_code != 0:
                raise TopicMismatchError(f"could not read the configs of {name}: {message}")
            configs[name] = {entry[0]: (entry[1], entry[3]) for entry in entries}
    return configs, unknown


def _show(configs: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in configs.items())


def _create_errors(response: object) -> dict[str, str]:
    errors: dict[str, str] = {}
    for topic_error in getattr(response, "topic_errors", None) or []:
        name, code = topic_error[0], topic_error[1]
        if code not in (0, TopicAlreadyExistsError.errno):
            errors[name] = f"error code {code}: {topic_error[2] if len(topic_error) > 2 else ''}"
    return errors


def _check_partitions(specs: list[TopicSpec], described: list[dict[str, Any]]) -> None:
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    wrong = {
        s.name: (counts.get(s.name), s.partitions)
        for s in specs
        if counts.get(s.name) != s.partitions
    }
    if wrong:
        detail = ", ".join(f"{n} has {have} (want {want})" for n, (have, want) in wrong.items())
        raise TopicMismatchError(
            f"existing topics have the wrong partition count: {detail}. The line needs every "
            "topic co-partitioned; set ASSETLINE_TOPIC_PARTITIONS to match or recreate them."
        )


async def _wait_ready(
    admin: AIOKafkaAdminClient, names: list[str], timeout: float
) -> list[dict[str, Any]]:
    """Describe the topics once every partition has a leader (fresh ones take a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            described: list[dict[str, Any]] = await admin.describe_topics(names)
            if all(_ready(d) for d in described):
                return described
        except KafkaError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise TopicMismatchError(f"topics not ready after {timeout}s: {names}")
        await asyncio.sleep(0.2)


def _ready(described: dict[str, object]) -> bool:
    """Every partition has an elected leader (consumers log errors before that)."""
    partitions = described.get("partitions")
    if described.get("error_code", 0) != 0 or not isinstance(partitions, list) or not partitions:
        return False
    return all(p.get("leader", -1) >= 0 for p in partitions)
