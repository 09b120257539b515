"""The deadline watchdog's pure logic: deadlines, the open set, marks, the records it writes."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.deliver.completion import completion, ends_request, status_for_unapproved
from agents.deliver.ledger import already_completed
from agents.deliver.watchdog import (
    REASON,
    DeadlinePolicy,
    Marks,
    OpenRequest,
    OpenSet,
    caught_up,
    closing_attempt,
    completed_attempt,
    deadline_alert,
    timeout_from_request,
    timeout_from_review,
)
from schemas.attempts import MAX_ATTEMPT, replay_attempt
from schemas.records import AlertKind, CompletionStatus, Disposition, Verdict
from streams.codecs import Codecs
from tests.support.assets import failed, make_request, make_validated

CODECS = Codecs.load()
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T0 = CREATED.timestamp()
POLICY = DeadlinePolicy(request_s=3600.0, slack_s=300.0, review_s=86400.0)


# deadlines


def test_a_request_without_budget_gets_the_line_default_from_created_at() -> None:
    request = make_request(created_at=CREATED)
    assert POLICY.for_request(request, written_ms=None) == T0 + 3600.0
    # written a moment after it was created (the usual case): still from created_at
    assert POLICY.for_request(request, written_ms=int(T0 * 1000) - 500) == T0 + 3600.0


def test_a_latency_budget_plus_slack_replaces_the_line_default() -> None:
    request = make_request(created_at=CREATED, latency_budget_ms=20_000)
    assert POLICY.for_request(request, written_ms=None) == T0 + 20.0 + 300.0


def test_a_later_attempt_or_replay_counts_from_when_it_was_written() -> None:
    request = make_request(attempt=2, created_at=CREATED)
    written = T0 + 7 * 86400  # a replay a week later must not time out on arrival
    assert POLICY.for_request(request, written_ms=int(written * 1000)) == written + 3600.0


def test_waiting_in_review_has_its_own_deadline_from_entering_review() -> None:
    assert POLICY.for_review(queued_ms=int(T0 * 1000)) == T0 + 86400.0


def test_a_timeout_closes_the_generation_and_a_replay_still_completes() -> None:
    assert closing_attempt(1) == closing_attempt(3) == 999
    assert closing_attempt(1002) == 1999
    assert closing_attempt(replay_attempt(1)) > 999  # the replay's own generation
    closing = CODECS.completed.encode(
        completion(
            timeout_from_request(make_request(), OpenRequest(1, T0, 0)), CompletionStatus.FAILED
        )
    )
    # the ledger then drops every later attempt of the generation, not the replay
    assert already_completed(closing, 2, CODECS.completed.decode)
    assert already_completed(closing, 10, CODECS.completed.decode)
    assert not already_completed(closing, replay_attempt(1), CODECS.completed.decode)


def test_completed_attempt_reads_the_ledger_entry() -> None:
    done = completion(
        make_validated([], request=make_request(attempt=4)), CompletionStatus.DELIVERED
    )
    assert completed_attempt(None, CODECS.completed.decode) is None
    assert completed_attempt(CODECS.completed.encode(done), CODECS.completed.decode) == 4
    # unreadable (a newer writer): proves a completion exists, covers every attempt
    assert completed_attempt(b"\x00garbage", CODECS.completed.decode) == MAX_ATTEMPT


# the open set


def test_open_requests_are_kept_until_a_covering_completion() -> None:
    s = OpenSet()
    s.on_request("a", 1, T0 + 10, offset=5)
    s.on_request("b", 1, T0 + 20, offset=6)
    assert len(s) == 2
    assert not s.on_completed("a", 0)  # an older attempt's completion does not end it
    assert s.on_completed("a", 1)
    assert "a" not in s
    assert not s.on_completed("zzz", 1)
    assert len(s) == 1


def test_a_later_attempt_supersedes_and_a_repeat_is_ignored() -> None:
    s = OpenSet()
    s.on_request("a", 1, T0 + 10, offset=5)
    s.on_request("a", 1, T0 + 99, offset=7)  # a producer retry of the same attempt
    entry = s.get("a")
    assert entry is not None
    assert (entry.deadline, entry.request_offset) == (T0 + 10, 5)
    s.on_request("a", 2, T0 + 50, offset=9)  # the re-generation
    entry = s.get("a")
    assert entry is not None
    assert (entry.attempt, entry.deadline, entry.request_offset) == (
        2,
        T0 + 50,
        9,
    )
    s.on_request("a", 1, T0 + 10, offset=11)  # an old attempt read late changes nothing
    assert s.get("a") == entry
    assert not s.on_completed("a", 1)
    assert s.on_completed("a", 2)


def test_review_replaces_the_deadline_and_frees_the_requests_mark() -> None:
    s = OpenSet()
    s.on_request("a", 1, T0 + 10, offset=5)
    s.on_request("b", 1, T0 + 10, offset=6)
    assert s.marks(requests_position=7, review_position=0, urgent_position=0) == Marks(5, 0, 0)
    s.on_review("a", 1, T0 + 86400, offset=3)
    entry = s.get("a")
    assert entry is not None
    assert entry.in_review
    assert entry.deadline == T0 + 86400
    # 'a' needs only its review record now: the requests mark moves on to 'b'
    assert s.marks(requests_position=7, review_position=4, urgent_position=0) == Marks(6, 3, 0)
    assert [rid for rid, _ in s.due(T0 + 11, 10)] == ["b"]
    s.on_completed("b", 1)
    s.on_completed("a", 1)
    assert s.marks(requests_position=7, review_position=4, urgent_position=0) == Marks(7, 4, 0)


def test_a_review_record_read_before_its_request_keeps_the_review_deadline() -> None:
    s = OpenSet()
    s.on_review("a", 2, T0 + 86400, offset=1)
    s.on_request("a", 2, T0 + 10, offset=8)  # same attempt, read late: still in review
    s.on_request("a", 1, T0 + 10, offset=9)
    entry = s.get("a")
    assert entry is not None
    assert entry.in_review
    assert entry.deadline == T0 + 86400
    assert s.marks(requests_position=10, review_position=2, urgent_position=0) == Marks(10, 1, 0)
    s.on_review("a", 1, T0, offset=3)  # an older attempt's review changes nothing
    assert s.get("a") == entry
    s.on_request("a", 3, T0 + 20, offset=11)  # a new attempt leaves review
    entry = s.get("a")
    assert entry is not None
    assert not entry.in_review
    assert s.marks(requests_position=12, review_position=4, urgent_position=0) == Marks(11, 4, 0)


def test_due_lists_the_oldest_first_up_to_a_limit_and_skips_timed_out() -> None:
    s = OpenSet()
    s.on_request("late", 1, T0 + 30, offset=1)
    s.on_request("early", 1, T0 + 10, offset=2)
    s.on_request("future", 1, T0 + 999, offset=3)
    assert [rid for rid, _ in s.due(T0 + 100, 10)] == ["early", "late"]
    assert [rid for rid, _ in s.due(T0 + 100, 1)] == ["early"]
    s.mark_timed_out("early")
    assert [rid for rid, _ in s.due(T0 + 100, 10)] == ["late"]
    # a timed-out request stays (and holds the mark) until its completion is read
    assert "early" in s
    assert s.marks(requests_position=4, review_position=0, urgent_position=0).requests == 1
    s.on_completed("late", 999)
    assert s.marks(requests_position=4, review_position=0, urgent_position=0).requests == 2


def test_marks_of_an_empty_set_are_the_reader_positions() -> None:
    assert OpenSet().marks(42, 7, 3) == Marks(42, 7, 3)


def test_an_urgent_request_holds_the_urgent_mark_only() -> None:
    """A HIGH request read from .requests.urgent has its own index: it holds back that
    topic's mark, not the .requests one, and its entry says where its record is."""
    s = OpenSet()
    s.on_request("n", 1, T0 + 10, offset=4)
    s.on_request("h", 1, T0 + 10, offset=2, urgent=True)
    entry = s.get("h")
    assert entry is not None
    assert (entry.urgent, entry.request_offset) == (True, 2)
    assert s.marks(requests_position=9, review_position=0, urgent_position=5) == Marks(4, 0, 2)
    s.on_completed("n", 1)
    assert s.marks(requests_position=9, review_position=0, urgent_position=5) == Marks(9, 0, 2)
    s.on_review("h", 1, T0 + 86400, offset=1)  # in review: only its review record is needed
    assert s.marks(requests_position=9, review_position=3, urgent_position=5) == Marks(9, 1, 5)
    s.on_completed("h", 1)
    assert s.marks(requests_position=9, review_position=3, urgent_position=5) == Marks(9, 3, 5)


def test_attempts_decide_across_the_two_request_topics() -> None:
    """A HIGH first attempt written to .requests and its re-generation on .requests.urgent:
    the later attempt wins whichever topic is read first, and frees the other's mark."""
    s = OpenSet()
    s.on_request("h", 2, T0 + 50, offset=7, urgent=True)
    s.on_request("h", 1, T0 + 10, offset=3)  # the first attempt, read late from .requests
    entry = s.get("h")
    assert entry is not None
    assert (entry.attempt, entry.urgent) == (2, True)
    assert s.marks(requests_position=4, review_position=0, urgent_position=8) == Marks(4, 0, 7)
    s2 = OpenSet()
    s2.on_request("h", 1, T0 + 10, offset=3)
    s2.on_request("h", 2, T0 + 50, offset=7, urgent=True)
    assert s2.marks(requests_position=4, review_position=0, urgent_position=8) == Marks(4, 0, 7)


def test_a_reader_behind_the_previous_checks_end_is_not_caught_up() -> None:
    # quiet topic: at the end now
    assert caught_up({"req": 10, "rev": 3}, {"req": 10, "rev": 3}, {})
    # steady traffic: past what the previous check saw, behind the end now: fine
    assert caught_up({"req": 15}, {"req": 20}, {"req": 14})
    # catching up after a start: behind both
    assert not caught_up({"req": 5, "rev": 3}, {"req": 20, "rev": 3}, {"req": 14, "rev": 3})
    # first check of a partition: only the end now counts
    assert not caught_up({"req": 5}, {"req": 20}, {})


# what a timeout writes


def test_a_timed_out_request_completes_failed_deadline_exceeded_through_deliver() -> None:
    request = make_request(attempt=2, prior_cost=0.25, callback_url="https://hooks.example/x")
    entry = OpenRequest(attempt=2, deadline=T0, request_offset=3)
    ending = timeout_from_request(request, entry)
    decoded = CODECS.validated.decode(CODECS.validated.encode(ending))
    assert decoded.disposition is Disposition.REJECTED
    assert ends_request(decoded)
    done = completion(decoded, status_for_unapproved(decoded))
    assert done.status is CompletionStatus.FAILED
    assert done.reasons[0].startswith(f"{REASON}: open past its deadline 2026-01-02T03:04:05")
    assert done.attempt == 999
    assert done.cost == 0.25  # earlier attempts were paid for
    assert decoded.raw.request.callback_url == request.callback_url  # webhooks still go out
    assert decoded.raw.request.prompt_template == request.prompt_template  # replayable


def test_a_timed_out_review_keeps_its_asset_costs_and_reasons() -> None:
    waiting = make_validated(
        [failed("terms.prohibited", "risk-free")],
        request=make_request(attempt=3),
        raw_cost=0.5,
        judge_cost=0.125,
    ).model_copy(update={"disposition": Disposition.REVIEW})
    entry = OpenRequest(attempt=3, deadline=T0, request_offset=None, review_offset=4)
    ending = timeout_from_review(waiting, entry)
    decoded = CODECS.validated.decode(CODECS.validated.encode(ending))
    assert decoded.report.verdict is Verdict.ERROR
    done = completion(decoded, status_for_unapproved(decoded))
    assert done.status is CompletionStatus.FAILED
    assert done.location is None
    assert done.sha256 is None
    assert done.reasons[0].startswith(f"{REASON}: waiting for a review decision past")
    assert done.reasons[1] == "terms.prohibited: risk-free"
    assert done.cost == 0.625
    assert waiting.disposition is Disposition.REVIEW  # the original is not changed


def test_the_alert_names_the_request_and_has_a_stable_id() -> None:
    request = make_request(request_id="r-9", attempt=1)
    entry = OpenRequest(attempt=1, deadline=T0, request_offset=0)
    alert = deadline_alert(request, entry, now=T0 + 12.5)
    assert alert.kind is AlertKind.DEADLINE_EXCEEDED
    assert alert.alert_id == deadline_alert(request, entry, now=T0 + 99).alert_id
    assert (alert.request_id, alert.tenant, alert.campaign_id) == ("r-9", "acme", "spring")
    assert alert.details["overdue_s"] == "12.500"
    assert alert.details["waiting"] == "line"
    assert CODECS.alert.decode(CODECS.alert.encode(alert)) == alert
    assert "2026-01-02T03:04:05" in alert.message
