"""The validate stage as a pure function: raw asset + bytes in, validated asset out.

The Faust agent only fetches the blob and publishes the result; everything it decides lives
here, so it is testable without Kafka. Failures are data: nothing here raises for a bad asset.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from agents.validate.checks._base import Check, Subject
from agents.validate.suite import run_suite, verdict
from schemas.records import (
    CheckResult,
    Disposition,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.stage_io import STAGE_CRASHED

#: Codes of the ERROR results that validate() itself produces when there is nothing to judge.
MISSING_DATA: Final = "validate.missing_data"


def _why_no_asset(raw: RawAsset, data: bytes | None) -> CheckResult:
    """The failed result that explains why there is nothing to judge."""
    if raw.error is not None:
        return CheckResult(code=raw.error.code, passed=False, message=raw.error.message)
    uri = raw.blob.uri if raw.blob is not None else "the asset"  # the contract sets one of them
    return CheckResult(
        code=MISSING_DATA, passed=False, message=f"bytes of {uri} were not provided to validation"
    )


def validate(
    raw: RawAsset,
    data: bytes | None,
    checks: Sequence[Check],
    clock: Callable[[], float] = time.perf_counter,
) -> ValidatedAsset:
    """Judge one raw asset.

    A generation error (or a missing blob/bytes) gives verdict ERROR with one failed result
    carrying the reason; otherwise the suite runs on ``data`` (the blob's bytes) and the
    verdict is PASS iff every result passed. ``clock`` is injectable for deterministic tests.
    """
    started = clock()
    blob = raw.blob
    if raw.error is None and blob is not None and data is not None:
        subject = Subject(request=raw.request, data=data, media_type=blob.media_type)
        results = run_suite(subject, checks)
        outcome = verdict(results)
    else:
        results, outcome = [_why_no_asset(raw, data)], Verdict.ERROR
    return _validated(raw, outcome, results, (clock() - started) * 1000.0)


#: Runs the checks that apply to a subject (see ``agents.validate.deadline.CheckRunner``).
SuiteRunner = Callable[[Subject, Sequence[Check]], Awaitable[list[CheckResult]]]


async def validate_off_loop(
    raw: RawAsset,
    data: bytes | None,
    checks: Sequence[Check],
    run: SuiteRunner,
    clock: Callable[[], float] = time.perf_counter,
) -> ValidatedAsset:
    """:func:`validate` with the suite run by ``run``, which keeps slow checks off the loop."""
    started = clock()
    blob = raw.blob
    if raw.error is None and blob is not None and data is not None:
        subject = Subject(request=raw.request, data=data, media_type=blob.media_type)
        results = await run(subject, checks)
        outcome = verdict(results)
    else:
        results, outcome = [_why_no_asset(raw, data)], Verdict.ERROR
    return _validated(raw, outcome, results, (clock() - started) * 1000.0)


def unreadable(raw: RawAsset, code: str, message: str) -> ValidatedAsset:
    """The blob could not be read back (e.g. ``blob.missing``): ERROR, since nothing was judged."""
    result = CheckResult(code=code, passed=False, message=message)
    return _validated(raw, Verdict.ERROR, [result], 0.0)


def crashed(raw: RawAsset, message: str) -> ValidatedAsset:
    """The final record of a raw asset whose validation crashed: ERROR, disposition REJECTED.

    Published to ``.rejected`` so the deliver stage ends the request FAILED (``stage.crashed``)
    while the event waits on the dead-letter topic for a person.
    """
    validated = unreadable(raw, STAGE_CRASHED, message)
    return validated.model_copy(update={"disposition": Disposition.REJECTED})


def _validated(
    raw: RawAsset, outcome: Verdict, results: list[CheckResult], duration_ms: float
) -> ValidatedAsset:
    checks = [bounded(result) for result in results]
    report = ValidationReport(verdict=outcome, checks=checks, duration_ms=duration_ms)
    return ValidatedAsset(raw=raw, report=report)


#: A result's message and measured value are cut to this many characters: a validator may quote
#: the whole asset (jsonschema's ``not`` and ``enum`` errors repr the instance), and the report
#: travels in records capped at ``max_message_bytes`` (and into re-generation feedback).
MAX_CHECK_TEXT: Final = 1000


def bounded(result: CheckResult) -> CheckResult:
    """``result`` with its message and measured value cut to :data:`MAX_CHECK_TEXT`."""

    def cut(text: str) -> str:
        if len(text) <= MAX_CHECK_TEXT:
            return text
        return f"{text[:MAX_CHECK_TEXT]}... ({len(text)} characters)"

    message, measured = result.message, result.measured
    if len(message) <= MAX_CHECK_TEXT and (measured is None or len(measured) <= MAX_CHECK_TEXT):
        return result
    update = {"message": cut(message), "measured": None if measured is None else cut(measured)}
    return result.model_copy(update=update)
