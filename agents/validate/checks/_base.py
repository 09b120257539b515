"""The check interface: a pure function from an asset to one structured result.

The full validation suite (brand palettes, prohibited terms, an AI judge, ...) plugs in here:
each check has a stable ``code``, says which asset kinds it applies to, and never raises for a
bad asset - a bad asset is a failed :class:`CheckResult`, not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.records import AssetKind, CheckResult, GenerationRequest


@dataclass(frozen=True)
class Subject:
    """What a check looks at: the request (with its constraints) and the asset bytes."""

    request: GenerationRequest
    data: bytes
    media_type: str


def result(
    code: str, passed: bool, message: str, measured: str | None = None, *, repairable: bool = True
) -> CheckResult:
    """A check's result; ``repairable`` counts only on failure (a pass has nothing to repair).

    Most failures are the generated asset's fault, which a new generation may fix; a caller
    passes ``repairable=False`` when only a person or a corrected request can.
    """
    return CheckResult(
        code=code,
        passed=passed,
        message=message,
        measured=measured,
        repairable=repairable and not passed,
    )


class Check(Protocol):
    """One validation rule."""

    @property
    def code(self) -> str: ...

    @property
    def kinds(self) -> frozenset[AssetKind]: ...

    def __call__(self, subject: Subject) -> CheckResult: ...
