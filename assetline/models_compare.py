"""``assetline models compare``: an alias's versions side by side, from the line's topics.

An alias with a canary or a shadow (routing file; ``agents/inference/routing/versions.py``)
marks every record of its requests with the ``rung`` that made it: ``primary``, ``canary`` or
``shadow``. This module reads ``.raw`` (every generation), ``.approved`` and ``.rejected``
(validate's verdicts on primary and canary generations), ``.shadows`` (validate's verdicts on
shadow copies) and ``.completed`` (what was delivered), keeps the alias's records (since a
time, by record timestamp), and aggregates per rung (:func:`compare`, pure):

- requests: distinct request ids the rung generated for;
- approval rate: validations that passed over validations (each generation is validated once;
  a reviewer's later decision is not a validation and is not counted);
- re-generation rate: requests at least one of whose generations validate sent back for a
  new attempt (for a shadow: would have sent back; shadows are never re-generated);
- latency p50 / p95: generation wall time of the rung's generations (``RawAsset.latency_ms``);
- cost per asset: everything the rung spent (its generations and their validations' judge
  calls) over its delivered assets (primary, canary) or approved copies (shadow).

A record written twice (a redelivery after a crash) counts once: generations by (request,
attempt, rung), validations likewise, completions by request (the latest).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.inference.routing.versions import PRIMARY, RUNGS, SHADOW
from schemas.errors import AssetlineError
from schemas.records import (
    AssetCompleted,
    CompletionStatus,
    Disposition,
    RawAsset,
    ValidatedAsset,
    Verdict,
)
from streams.codecs import CodecError, Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames


class CompareError(AssetlineError, ValueError):
    """A bad ``--since``."""

    code = "models.bad_since"


@dataclass
class RungStats:
    """One rung's numbers (see the module docstring for what each means)."""

    rung: str
    models: Counter[str] = field(default_factory=Counter)
    requests: set[str] = field(default_factory=set)
    generations: int = 0
    validated: int = 0
    approved: int = 0
    regenerated: set[str] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)
    cost: float = 0.0
    delivered: int = 0

    @property
    def model(self) -> str:
        """The provider/model that made most of the rung's generations (+ how many others)."""
        if not self.models:
            return "-"
        (top, _), *others = self.models.most_common()
        return f"{top} (+{len(others)} other)" if others else top

    @property
    def assets(self) -> int:
        """What the rung's cost is spread over: delivered assets, or approved shadow copies."""
        return self.approved if self.rung == SHADOW else self.delivered

    def as_dict(self) -> dict[str, Any]:
        requests = len(self.requests)
        return {
            "rung": self.rung,
            "model": self.model,
            "models": dict(self.models),
            "requests": requests,
            "generations": self.generations,
            "validated": self.validated,
            "approved": self.approved,
            "approval_rate": _ratio(self.approved, self.validated),
            "regenerated": len(self.regenerated),
            "regeneration_rate": _ratio(len(self.regenerated), requests),
            "latency_ms": {
                "p50": percentile(self.latencies_ms, 50),
                "p95": percentile(self.latencies_ms, 95),
            },
            "cost_usd": round(self.cost, 10),
            "assets": self.assets,
            "per": "approved" if self.rung == SHADOW else "delivered",
            "cost_per_asset_usd": _ratio(self.cost, self.assets, digits=10),
        }


@dataclass(frozen=True)
class Comparison:
    alias: str
    since: datetime | None
    rungs: tuple[RungStats, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "since": self.since.isoformat() if self.since else None,
            "rungs": [stats.as_dict() for stats in self.rungs],
        }


def compare(
    alias: str,
    raws: Iterable[RawAsset],
    validations: Iterable[ValidatedAsset],
    completions: Iterable[AssetCompleted],
    since: datetime | None = None,
) -> Comparison:
    """Per rung of ``alias``: requests, approval and re-generation rates, latency, cost.

    ``validations``: the records of ``.approved``, ``.rejected`` and ``.shadows``. Records of
    other aliases are ignored; a record without a rung (an alias without versions, or written
    before them) counts as primary. Rungs with no record are left out.
    """
    stats: dict[str, RungStats] = {}

    def of(rung: str | None) -> RungStats:
        name = rung or PRIMARY
        return stats.setdefault(name, RungStats(name))

    seen: set[tuple[str, int, str | None]] = set()
    for raw in raws:
        key = (raw.request.request_id, raw.request.attempt, raw.rung)
        if raw.alias != alias or key in seen:
            continue
        seen.add(key)
        rung = of(raw.rung)
        rung.requests.add(raw.request.request_id)
        rung.generations += 1
        rung.cost += raw.cost
        if raw.error is None:
            rung.models[f"{raw.provider}/{raw.model_version}"] += 1
            rung.latencies_ms.append(raw.latency_ms)
    judged: set[tuple[str, int, str | None]] = set()
    for validated in validations:
        raw = validated.raw
        key = (raw.request.request_id, raw.request.attempt, raw.rung)
        if raw.alias != alias or validated.review is not None or key in judged:
            continue
        judged.add(key)
        rung = of(raw.rung)
        rung.validated += 1
        rung.cost += validated.report.cost
        if validated.report.verdict is Verdict.PASS:
            rung.approved += 1
        if validated.disposition is Disposition.REGENERATE:
            rung.regenerated.add(raw.request.request_id)
    latest: dict[str, AssetCompleted] = {}
    for done in completions:
        if done.alias != alias:
            continue
        before = latest.get(done.request_id)
        if before is None or done.attempt >= before.attempt:
            latest[done.request_id] = done
    for done in latest.values():
        if done.status is CompletionStatus.DELIVERED:
            of(done.rung).delivered += 1
    order = {name: n for n, name in enumerate(RUNGS)}
    rungs = sorted(stats.values(), key=lambda s: (order.get(s.rung, len(order)), s.rung))
    return Comparison(alias, since, tuple(rungs))


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The nearest-rank percentile (a value that occurred); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _ratio(part: float, whole: float, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90s``, ``30m``, ``24h``, ``7d``) or an ISO
    time (naive means UTC)."""
    text = text.strip()
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise CompareError(
            f"--since: not a duration or an ISO time: {text!r} (e.g. 24h or 2026-12-01T00:00Z)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def render_table(comparison: Comparison) -> str:
    """The comparison as a fixed-width table, one row per rung."""
    since = comparison.since.isoformat(timespec="seconds") if comparison.since else "the start"
    head = f"alias {comparison.alias}, since {since}"
    if not comparison.rungs:
        return f"{head}: no records"
    columns = (
        "rung",
        "model",
        "requests",
        "approved",
        "re-generated",
        "p50 ms",
        "p95 ms",
        "cost/asset USD",
        "assets",
    )
    rows = [columns]
    for stats in comparison.rungs:
        d = stats.as_dict()
        rows.append(
            (
                stats.rung,
                stats.model,
                str(d["requests"]),
                _pct(d["approval_rate"]),
                _pct(d["regeneration_rate"]),
                _num(d["latency_ms"]["p50"], 1),
                _num(d["latency_ms"]["p95"], 1),
                _num(d["cost_per_asset_usd"], 6),
                f"{d['assets']} {d['per']}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [head]
    for row in rows:
        cells = [
            cell.ljust(widths[i]) if i < 2 or i == len(row) - 1 else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def read_comparison(
    settings: Settings, codecs: Codecs, alias: str, since: datetime | None = None
) -> Comparison:
    """Read the line's topics (to their ends now) and :func:`compare` the alias's rungs."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    since_ms = int(since.timestamp() * 1000) if since is not None else None

    async def records(topic: str, codec: Any) -> list[Any]:
        decoded = []
        for record in await read_to_end(settings, topic):
            if record.value is None or (since_ms is not None and record.timestamp < since_ms):
                continue
            try:
                decoded.append(codec.decode(record.value, list(record.headers or ())))
            except CodecError:
                continue  # not a line record (the dead-letter topic keeps those)
        return decoded

    raws = await records(names.raw, codecs.raw)
    validations = [
        *await records(names.approved, codecs.validated),
        *await records(names.rejected, codecs.validated),
        *await records(names.shadows, codecs.validated),
    ]
    completions = await records(names.completed, codecs.completed)
    return compare(alias, raws, validations, completions, since)
