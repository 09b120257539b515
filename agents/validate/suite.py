"""Runs checks against one asset and folds their results into a verdict.

The suite is the crash barrier: a check that raises is reported as a failed result, so one
buggy rule can never stop the stream or let an asset through unjudged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from agents.validate.checks._base import Check, Subject
from schemas.records import CheckResult, Verdict

logger = logging.getLogger(__name__)


def run_check(check: Check, subject: Subject) -> CheckResult:
    """One check; an unexpected exception becomes a failed result under the check's code."""
    try:
        return check(subject)
    except Exception as exc:
        logger.warning("check %s crashed", check.code, exc_info=True)
        return CheckResult(
            code=check.code,
            passed=False,
            message=f"check crashed: {type(exc).__name__}: {exc}",
        )


def run_suite(subject: Subject, checks: Sequence[Check]) -> list[CheckResult]:
    """Results of the checks that apply to the request's kind, in the given order."""
    kind = subject.request.kind
    return [run_check(check, subject) for check in checks if kind in check.kinds]


def verdict(results: Iterable[CheckResult]) -> Verdict:
    """PASS iff every result passed (vacuously, when no check applied); FAIL otherwise."""
    return Verdict.PASS if all(result.passed for result in results) else Verdict.FAIL
