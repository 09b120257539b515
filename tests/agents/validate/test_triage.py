"""triage(): approved, re-generated with feedback, sent to a person, or rejected."""

from __future__ import annotations

import pytest

from agents.inference.prompt import FEEDBACK_HEADER, render_prompt
from agents.policy import DEFAULT_POLICY, Policy
from agents.validate.triage import MAX_FEEDBACK_CHARS, feedback_lines, triage
from schemas.records import Disposition, Verdict
from tests.support.assets import failed, make_request, make_validated, passed

BRAND = Policy(id="acme", max_attempts=3, review=True, label="acme")


def test_pass_is_approved_without_a_retry() -> None:
    decision = triage(make_validated([passed("text.not_empty")]), BRAND)
    assert decision.disposition is Disposition.APPROVED
    assert decision.retry is None


def test_error_is_final_even_under_a_generous_policy() -> None:
    validated = make_validated([failed("provider.timeout")], verdict=Verdict.ERROR)
    assert triage(validated, BRAND).disposition is Disposition.REJECTED


def test_repairable_failure_is_regenerated_with_feedback_and_attempt_plus_one() -> None:
    validated = make_validated(
        [passed("text.not_empty"), failed("text.prohibited", "found 'free' as 'fr33'")],
        raw_cost=0.01,
        judge_cost=0.002,
    )
    decision = triage(validated, BRAND)
    assert decision.disposition is Disposition.REGENERATE
    retry = decision.retry
    assert retry is not None
    assert retry.attempt == 2
    assert retry.request_id == "r-1"
    assert retry.idempotency_key == "k-1"
    assert retry.feedback == ["text.prohibited: found 'free' as 'fr33'"]
    assert retry.prior_cost == pytest.approx(0.012)
    assert retry.prompt_template == validated.raw.request.prompt_template


def test_feedback_accumulates_across_attempts() -> None:
    request = make_request(attempt=2, feedback=["palette.brand: too green"], prior_cost=0.5)
    validated = make_validated([failed("text.required", "missing 'Terms apply.'")], request=request)
    retry = triage(validated, BRAND).retry
    assert retry is not None
    assert retry.attempt == 3
    assert retry.feedback == ["palette.brand: too green", "text.required: missing 'Terms apply.'"]
    assert retry.prior_cost == pytest.approx(0.5)


def test_attempts_exhausted_go_to_review() -> None:
    request = make_request(attempt=3)
    validated = make_validated([failed("palette.brand")], request=request)
    decision = triage(validated, BRAND)
    assert decision.disposition is Disposition.REVIEW
    assert decision.retry is None


def test_a_replayed_attempt_gets_the_same_repairs_as_the_original() -> None:
    # Replays carry attempts 1001, 2001, ... (assetline/replay/rewrite.py): still repairable.
    first = make_validated([failed("palette.brand")], request=make_request(attempt=1001))
    decision = triage(first, BRAND)
    assert decision.disposition is Disposition.REGENERATE
    assert decision.retry is not None
    assert decision.retry.attempt == 1002
    last = make_validated([failed("palette.brand")], request=make_request(attempt=1003))
    assert triage(last, BRAND).disposition is Disposition.REVIEW


def test_unrepairable_failure_goes_to_review_at_once() -> None:
    validated = make_validated([failed("palette.brand"), failed("judge.timeout", repairable=False)])
    assert triage(validated, BRAND).disposition is Disposition.REVIEW


def test_without_review_an_unrepairable_failure_is_rejected() -> None:
    validated = make_validated([failed("json.schema", repairable=False)])
    assert triage(validated, DEFAULT_POLICY).disposition is Disposition.REJECTED
    quiet = BRAND.model_copy(update={"review": False})
    exhausted = make_validated([failed("palette.brand")], request=make_request(attempt=3))
    assert triage(exhausted, quiet).disposition is Disposition.REJECTED


def test_default_policy_never_regenerates() -> None:
    validated = make_validated([failed("text.max_chars")])
    assert triage(validated, DEFAULT_POLICY).disposition is Disposition.REJECTED


def test_feedback_lines_are_single_line_and_bounded() -> None:
    long = "word " * 500
    lines = feedback_lines(make_validated([failed("judge.verdict", "a\nb\t c"), failed("x", long)]))
    assert lines[0] == "judge.verdict: a b c"
    assert len(lines[1]) <= len("x: ") + MAX_FEEDBACK_CHARS
    assert lines[1].endswith("…")


def test_prompt_carries_feedback_after_substitution() -> None:
    request = make_request(feedback=["text.prohibited: found '$persona' and 'free'"])
    prompt = render_prompt(request)
    assert prompt.startswith("Write copy for runner\n\n" + FEEDBACK_HEADER)
    assert prompt.endswith("- text.prohibited: found '$persona' and 'free'")  # not substituted
    assert render_prompt(make_request()) == "Write copy for runner"
