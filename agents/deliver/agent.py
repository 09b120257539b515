"""The deliver stage: approved -> sink -> DELIVERED; rejected -> REJECTED/FAILED; once each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.deliver.cloudevents import completion_headers, data_schema, event_source
from agents.deliver.completion import completion, ends_request, status_for_unapproved
from agents.deliver.delivery import deliver_approved
from agents.deliver.ledger import LedgerTable, already_completed
from agents.deliver.provenance import Labeller
from agents.deliver.sinks import FilesystemSink
from agents.validate.policy import load_profiles
from streams.stage import StageIO

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "deliver"


def install(line: Line) -> None:
    io = StageIO(line, STAGE)
    codecs = line.codecs
    topics = line.topics
    sink = FilesystemSink(line.settings.delivery_dir)
    label = Labeller(
        load_profiles(line.settings.profiles_dir),
        include_prompt=line.settings.metadata_include_prompt,
        enabled=line.settings.stamp_metadata,
    )
    ledger = LedgerTable(
        line.app,
        name="completions",
        beacon=line.app.tables.beacon,
        changelog_topic=topics.completed,
        key_type=bytes,
        value_type=bytes,
        partitions=line.settings.topic_partitions,
    )
    line.app.tables.add(ledger)
    source = event_source(line.settings.topic_prefix)
    dataschema = data_schema(codecs.completed.fingerprint)

    def ce_headers(value: bytes) -> list[tuple[str, bytes]]:
        done = codecs.completed.decode(value)
        return completion_headers(done, source=source, dataschema=dataschema)

    ledger.headers_for = ce_headers
    sources = line.app.topic(
        topics.names.approved,
        topics.names.rejected,
        key_serializer="raw",
        value_serializer="raw",
    )

    @line.app.agent(sources, name=STAGE)
    async def deliver(stream: Any) -> None:
        async for event in stream.events():
            async with io.handling(event):
                validated = await io.decode(codecs.validated, event)
                if validated is None:
                    continue
                if not ends_request(validated):
                    line.metrics.events_out.labels(STAGE, "detour").inc()
                    continue  # the request lives on: a new attempt, or a person, will end it
                request = validated.raw.request
                key = request.request_id.encode("utf-8")
                if already_completed(ledger.get(key), request.attempt, codecs.completed.decode):
                    line.metrics.duplicates.labels(STAGE).inc()
                    continue
                if event.message.topic == topics.names.approved:
                    done = await deliver_approved(validated, line.blobs, sink, label)
                else:
                    done = completion(validated, status_for_unapproved(validated))
                ledger[key] = codecs.completed.encode(done)  # publishes to .completed
                line.metrics.completions.labels(done.status.value).inc()
                if done.location is not None:
                    line.metrics.delivered_attempts.observe(done.attempt)
                line.metrics.events_out.labels(STAGE, "completed").inc()
