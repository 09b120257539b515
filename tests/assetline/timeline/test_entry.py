"""assetline.timeline.entry: one real Avro record -> the timeline entries it means."""

from __future__ import annotations

import pytest

from assetline.timeline import EventKind, TopicKind, entry_from, reason_code, trace_id_of
from assetline.timeline.entry import topic_kinds
from schemas.records import ReviewAction
from streams.codecs import Codecs
from streams.topics import TopicNames
from tests.support.request_events import (
    TRACE_ID,
    TRACEPARENT,
    Record,
    completed,
    dead_letter,
    decision,
    delivered_story,
    failed_story,
    request,
    review_story,
)


@pytest.fixture(scope="module")
def codecs() -> Codecs:
    return Codecs.load()


def _entries(codecs: Codecs, record: Record) -> tuple:  # type: ignore[type-arg]
    return entry_from(
        record.topic, record.key, record.value, record.headers, record.timestamp, codecs=codecs
    )


def test_a_delivered_request_tells_each_hop(codecs: Codecs) -> None:
    story = delivered_story(codecs, "r1", 1_000)
    entries = [e for record in story for e in _entries(codecs, record)]
    assert [e.kind for e in entries] == [
        EventKind.REQUESTED,
        EventKind.GENERATED,
        EventKind.VALIDATED,
        EventKind.DELIVERED,
        EventKind.COMPLETED,
        EventKind.WEBHOOK,
    ]
    assert {e.request_id for e in entries} == {"r1"}
    assert {e.trace_id for e in entries} == {TRACE_ID}
    requested, generated, validated, delivered, done, hook = entries
    assert requested.campaign_id == "spring"
    assert requested.tenant == "acme"
    assert generated.details["provider"] == "offline"
    assert generated.details["model"] == "offline-image-1"
    assert generated.details["rung"] == "primary"
    assert generated.cost == pytest.approx(0.02)
    assert generated.asset == "file:///var/blobs/aa/bb/r1"
    assert validated.details["verdict"] == "PASS"
    assert validated.details["failed"] == []
    assert delivered.details["location"] == "file:///deliveries/acme/r1.png"
    assert delivered.at_ms == done.at_ms == 1_030
    assert done.details["status"] == "DELIVERED"
    assert hook.details["url"] == "https://hooks.example/assets"


def test_a_deferred_delivery_says_which_destination_it_waits_for(codecs: Codecs) -> None:
    """Issue 16: a request whose destination had its bound of deliveries waiting shows
    "deferred for destination X" (a copy on .deliver.deferred), between approval and delivery."""
    from agents.deliver.deferral import deferred_headers

    approved = delivered_story(codecs, "r9", 1_000)[2]
    headers = deferred_headers(
        approved.headers, source="p.approved", destination="dam", due_ms=1_700_000_000_000, count=2
    )
    (entry,) = entry_from(
        TopicKind.DELIVER_DEFERRED, b"r9", approved.value, headers, 1_025, codecs=codecs
    )
    assert entry.kind is EventKind.DEFERRED
    assert entry.request_id == "r9"
    assert entry.summary == (
        "deferred for destination dam (2 times, due 2023-11-14T22:13:20.000+00:00)"
    )
    assert entry.details["destination"] == "dam"
    assert entry.details["deferrals"] == 2
    assert entry.trace_id == TRACE_ID
    assert entry.tenant == "acme"
    (broken,) = entry_from(TopicKind.DELIVER_DEFERRED, b"r9", b"\x00junk", [], 1_025, codecs=codecs)
    assert broken.kind is EventKind.UNDECODABLE
    # A due time past the calendar (18 digits are read) is shown as it is, not an error.
    far = deferred_headers(
        approved.headers, source="p.approved", destination="dam", due_ms=10**17, count=1
    )
    (odd,) = entry_from(
        TopicKind.DELIVER_DEFERRED, b"r9", approved.value, far, 1_025, codecs=codecs
    )
    assert odd.summary == f"deferred for destination dam (1 time, due {10**17} ms)"


def test_review_records_name_failed_checks_and_the_reviewer(codecs: Codecs) -> None:
    story = review_story(codecs, "r2", 2_000)
    (sent,) = _entries(codecs, story[-1])
    assert sent.kind is EventKind.SENT_TO_REVIEW
    assert sent.details["failed"] == [{"code": "brand.palette", "message": "brand.palette failed"}]
    value = codecs.review_decision.encode(decision("r2", ReviewAction.REJECT, "bo"))
    (decided,) = entry_from(TopicKind.REVIEW_DECISIONS, b"r2", value, None, 3_000, codecs=codecs)
    assert decided.kind is EventKind.DECIDED
    assert decided.details["reviewer"] == "bo"
    assert decided.details["action"] == "REJECT"


def test_a_failed_completion_carries_its_reason_code(codecs: Codecs) -> None:
    story = failed_story(codecs, "r3", 3_000, "routing.unknown_provider: no such provider")
    (done,) = _entries(codecs, story[-1])  # no location: no delivered entry
    assert done.kind is EventKind.COMPLETED
    assert done.details["status"] == "FAILED"
    assert done.details["reason_code"] == "routing.unknown_provider"


def test_dead_letters_read_their_headers(codecs: Codecs) -> None:
    (entry,) = _entries(codecs, dead_letter("r4", 9))
    assert entry.kind is EventKind.DEAD_LETTER
    assert entry.details["stage"] == "generate"
    assert entry.details["code"] == "codec.malformed"
    assert entry.details["source_topic"] == "line.requests"
    assert entry.details["source_offset"] == "7"


def test_undecodable_values_and_tombstones(codecs: Codecs) -> None:
    (bad,) = entry_from(TopicKind.RAW, b"r5", b"\xc3\x01nonsense", None, 1, codecs=codecs)
    assert bad.kind is EventKind.UNDECODABLE
    assert bad.request_id == "r5"
    assert entry_from(TopicKind.REVIEW_ITEMS, b"r5", None, None, 1, codecs=codecs) == ()
    assert entry_from(TopicKind.RAW, None, b"junk", None, 1, codecs=codecs) == ()


def test_generation_records_are_keyed_by_request_and_attempt(codecs: Codecs) -> None:
    value = b'0001764763200000 {"format":1,"raw":{"provider":"offline","model_version":"m"}}'
    (entry,) = entry_from(TopicKind.GENERATIONS, b"r6|2", value, None, 5, codecs=codecs)
    assert entry.request_id == "r6"
    assert entry.attempt == 2
    assert entry.details["provider"] == "offline"


def test_a_batch_ticket_record_names_its_provider_batch(codecs: Codecs) -> None:
    """agents/inference/batch/_tickets.py keys a request's place in a batch ``<id>|batch-<n>``."""
    value = (
        b'0001764763200000 {"format":1,"provider":"openai","model":"gpt-x",'
        b'"batch_id":"batch_abc","custom_id":"r8|1","prompt_sha256":"00"}'
    )
    (entry,) = entry_from(TopicKind.GENERATIONS, b"r8|batch-1", value, None, 5, codecs=codecs)
    assert entry.request_id == "r8"
    assert entry.attempt == 1
    assert entry.summary == "placed in provider batch batch_abc (openai/gpt-x)"
    hostile = b'0001764763200000 {"provider":7,"model":["x"],"batch_id":null}'
    (odd,) = entry_from(TopicKind.GENERATIONS, b"r8|batch-1", hostile, None, 5, codecs=codecs)
    assert odd.summary == "placed in provider batch None (None/None)"


def test_a_batch_intent_record_names_its_input_file(codecs: Codecs) -> None:
    """An intent (recorded before the batch is created) has a file and no batch yet."""
    value = (
        b'0001764763200000 {"format":1,"provider":"openai","model":"gpt-x","batch_id":"",'
        b'"custom_id":"r8-1","prompt_sha256":"00","input_file_id":"file-abc"}'
    )
    (entry,) = entry_from(TopicKind.GENERATIONS, b"r8|batch-1", value, None, 5, codecs=codecs)
    assert entry.summary == "about to be batched from input file file-abc (openai/gpt-x)"
    assert entry.details["input_file_id"] == "file-abc"


def test_a_regeneration_request_shows_its_feedback(codecs: Codecs) -> None:
    again = request("r7", attempt=2, feedback=["palette: too red"], prior_cost=0.02)
    (entry,) = entry_from(
        TopicKind.REQUESTS, b"r7", codecs.request.encode(again), None, 1, codecs=codecs
    )
    assert entry.attempt == 2
    assert "palette: too red" in entry.summary
    assert entry.cost == pytest.approx(0.02)


def test_trace_ids_from_traceparent_only_when_well_formed() -> None:
    assert trace_id_of([("traceparent", TRACEPARENT)]) == TRACE_ID
    assert trace_id_of([("Traceparent", TRACEPARENT)]) == TRACE_ID
    assert trace_id_of([("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")]) is None
    assert trace_id_of([("traceparent", b"00-xyz-1-01")]) is None
    assert trace_id_of([("other", TRACEPARENT)]) is None
    assert trace_id_of(None) is None


def test_reason_code() -> None:
    assert reason_code(["json.schema: missing 'price'", "other: x"]) == "json.schema"
    assert reason_code(["deliver.no_blob"]) == "deliver.no_blob"
    assert reason_code([]) is None


def test_topic_kinds_cover_the_line_and_the_retry_tiers() -> None:
    names = TopicNames.with_prefix("p")
    kinds = topic_kinds(names, retry_tiers=2)
    assert kinds["p.completed"] is TopicKind.COMPLETED
    assert kinds["p.requests"] is kinds["p.requests.urgent"] is TopicKind.REQUESTS
    assert kinds["p.review.decisions"] is TopicKind.REVIEW_DECISIONS
    assert kinds["p.webhooks.retry.2"] is TopicKind.WEBHOOK_RETRY
    assert kinds["p.deliver.deferred"] is TopicKind.DELIVER_DEFERRED
    assert "p.spend" not in kinds
    assert set(kinds.values()) == set(TopicKind)


def test_completion_cost_is_the_requests_total(codecs: Codecs) -> None:
    done = completed(request("r8"), cost=0.07)
    entries = entry_from(
        TopicKind.COMPLETED, b"r8", codecs.completed.encode(done), None, 1, codecs=codecs
    )
    assert [e.cost for e in entries] == [pytest.approx(0.07)] * 2
