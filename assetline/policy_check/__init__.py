"""Policy dry run: today's validation suite on past assets, with no side effects.

:mod:`.report` folds per-asset outcomes into a report (pure), :mod:`.sources` reads the assets
of a topic range (``raw``, or ``completed`` through its ``.approved`` record), :mod:`.run` fetches
their bytes and runs the checks in a process pool. Nothing here produces to a topic or calls a
provider: a policy's judge is left out (a dry run pays for nothing).
"""

from assetline.policy_check.report import (
    AssetOutcome,
    CheckTally,
    DryRunReport,
    build_report,
    render_report,
    report_json,
)

__all__ = [
    "AssetOutcome",
    "CheckTally",
    "DryRunReport",
    "build_report",
    "render_report",
    "report_json",
]
