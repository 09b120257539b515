"""``assetline campaign``: expand a template x segments, submit, and track to the deadline.

The work is in :mod:`assetline.campaign` (expansion, progress, and following the line in
:mod:`assetline.campaign.track`) and :class:`assetline.client.LineClient`; this module only
wires them to the terminal: a progress bar while submitting, a live status line while
waiting, a summary at the end, and exit code 3 when the deadline passed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

import click

from assetline.campaign import (
    Campaign,
    CampaignInputError,
    CampaignSummary,
    expand,
    load_template,
    read_segments,
)
from assetline.campaign.track import (
    follow_completions,
    keep_marking_in_review,
    mark_waiting_in_review,
    without_completion,
)
from assetline.cli._common import (
    EXIT_TIMEOUT,
    EXIT_UNDELIVERED,
    PRIORITY_CHOICES,
    delivery_verdict,
    load_settings,
    priority_option,
    run,
)
from assetline.client import LineClient
from assetline.submit import RequestOptionError, parse_deadline
from schemas.records import GenerationRequest, Priority
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs

#: Exit code when the deadline passed with requests outstanding (1 = error, 2 = usage);
#: EXIT_UNDELIVERED (4) when every request completed but not every one was DELIVERED.
EXIT_DEADLINE = EXIT_TIMEOUT
SHOW_MISSING = 5
#: How long the command waits for completions when no --deadline is given.
DEFAULT_WAIT = "30m"


class _Live:
    """Prints the summary line: rewritten in place on a terminal, every 10 s in a log."""

    def __init__(self, summary: CampaignSummary, started: float) -> None:
        self.summary = summary
        self.started = started
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 10.0
        self.last_print = time.monotonic()
        self.last_line = ""

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_print < self.every:
            return
        line = self.summary.line(now - self.started)
        if self.tty:
            click.echo("\r" + line.ljust(len(self.last_line)), nl=False, err=True)
        elif line.split("  ")[:-1] != self.last_line.split("  ")[:-1] or force:
            click.echo(line, err=True)  # only when counts changed: logs stay short
        self.last_line, self.last_print = line, now

    def close(self) -> None:
        self.tick(force=True)
        if self.tty:
            click.echo("", err=True)


async def _submit(
    settings: Settings, requests: list[GenerationRequest], rate: float | None
) -> tuple[int, float]:
    total = len(requests)
    async with LineClient(settings) as client:
        started = time.perf_counter()
        with click.progressbar(
            length=total,
            label="submitting",
            file=sys.stderr,
            update_min_steps=max(1, total // 200),
        ) as bar:
            sent = await client.submit(requests, rate=rate, on_acked=bar.update)
        return sent, time.perf_counter() - started


async def _campaign(
    settings: Settings,
    plan: Campaign,
    rate: float | None,
    deadline: float | None,
    started: float,
    skip_completed: bool = False,
) -> tuple[CampaignSummary | None, int, float]:
    await ensure_topics(settings, line_topic_specs(settings))
    codecs = Codecs.load()
    summary = CampaignSummary(plan.request_ids)
    requests = plan.requests
    if skip_completed:
        requests = await without_completion(settings, plan, summary, codecs)
        click.echo(
            f"{summary.done} request(s) already completed: submitting {len(requests)}", err=True
        )
    sent, seconds = await _submit(settings, requests, rate)
    click.echo(
        f"submitted {sent} request(s) in {seconds:.1f}s ({sent / max(seconds, 1e-9):.0f}/s)",
        err=True,
    )
    if deadline is None:
        return None, sent, seconds
    live = _Live(summary, started)
    # The live line shows the ids held for a person as IN_REVIEW while it waits.
    marking = asyncio.create_task(keep_marking_in_review(settings, summary, codecs))
    try:
        await follow_completions(settings, summary, codecs, deadline, live.tick)
    finally:
        marking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await marking
        live.close()
    if not summary.complete:
        # Held for a person is not lost: the review table says which of the rest wait there.
        await mark_waiting_in_review(settings, summary, codecs)
    return summary, sent, seconds


@click.command()
@click.option(
    "--template",
    "template_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Request template (.yaml/.yml/.json) with ${var} placeholders.",
)
@click.option(
    "--segments",
    "segments_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="One row per segment (.csv with a header, or .jsonl); columns are variables, "
    "'@field' columns override request fields.",
)
@click.option(
    "--deadline",
    default=None,
    metavar="DURATION",
    help="Time allowed, from the start, until every request completed (90s, 30m, 24h, "
    "1h30m); every request's latency_budget_ms is capped to it. Not given: wait "
    f"{DEFAULT_WAIT}, requests keep their own budgets.",
)
@click.option(
    "--priority",
    type=click.Choice(PRIORITY_CHOICES, case_sensitive=False),
    callback=priority_option,
    default=None,
    help="Priority of every request (over the template's; a row's @priority wins).",
)
@click.option("--no-wait", is_flag=True, help="Submit, then exit without tracking completions.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Submit at most this many requests per second (default: as fast as possible).",
)
@click.option(
    "--skip-completed",
    is_flag=True,
    help="Submit only requests that have no completion yet (re-running a campaign).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
@click.pass_context
def campaign(
    ctx: click.Context,
    template_path: Path,
    segments_path: Path,
    deadline: str | None,
    priority: Priority | None,
    no_wait: bool,
    rate: float | None,
    skip_completed: bool,
    as_json: bool,
) -> None:
    """Fan a request template out over a segments file, submit, and track completions.

    Request ids are <campaign_id>-<sha256(template + row)>, so re-running a campaign resubmits
    the same ids (the line keeps one completion each; --skip-completed submits only the ids
    without one) and identical rows collapse. Exits 3 when the deadline passes with requests
    outstanding (naming the first missing ids, and how many wait in review), and 4 when every
    request completed but not all were DELIVERED.
    """
    started = time.monotonic()
    try:
        deadline_ms = None if deadline is None else parse_deadline(deadline)
        deadline_s = parse_deadline(deadline or DEFAULT_WAIT) / 1000.0
    except RequestOptionError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param_hint="'--deadline'") from None
    settings = load_settings()
    try:
        template = load_template(template_path)
        plan = expand(
            template,
            read_segments(segments_path),
            source=str(segments_path),
            priority=priority,
            deadline_ms=deadline_ms,
        )
    except CampaignInputError as exc:
        raise click.ClickException(str(exc)) from None
    collapsed = f", {plan.duplicates} duplicate row(s) collapsed" if plan.duplicates else ""
    click.echo(
        f"campaign {plan.campaign_id}: {plan.rows} row(s) -> {len(plan.requests)} "
        f"request(s){collapsed}",
        err=True,
    )
    summary, sent, submit_s = run(
        _campaign(
            settings,
            plan,
            rate,
            None if no_wait else started + deadline_s,
            started,
            skip_completed=skip_completed,
        ),
        settings,
    )
    elapsed = time.monotonic() - started
    if summary is None:
        if as_json:
            click.echo(json.dumps({"campaign_id": plan.campaign_id, "submitted": sent}))
        return
    missing = summary.missing()
    if as_json:
        report = {
            "campaign_id": plan.campaign_id,
            "rows": plan.rows,
            "duplicates": plan.duplicates,
            "submitted": sent,
            "submit_seconds": round(submit_s, 3),
            "seconds": round(elapsed, 3),
            **summary.report(),
        }
        click.echo(json.dumps(report))
    else:
        click.echo(
            f"campaign {plan.campaign_id}: {summary.done}/{summary.total} complete "
            f"in {elapsed:.1f}s"
        )
        click.echo(summary.table())
    if missing or summary.in_review:
        parts = []
        if summary.in_review:
            parts.append(
                f"{len(summary.in_review)} waiting in review "
                f"(assetline review list --campaign {plan.campaign_id})"
            )
        if missing:
            shown = ", ".join(missing[:SHOW_MISSING])
            more = (
                f" (and {len(missing) - SHOW_MISSING} more)" if len(missing) > SHOW_MISSING else ""
            )
            parts.append(f"missing: {shown}{more}")
        outstanding = len(missing) + len(summary.in_review)
        click.echo(
            f"Error: deadline {deadline or DEFAULT_WAIT} passed with {outstanding} of "
            f"{summary.total} request(s) outstanding; " + "; ".join(parts),
            err=True,
        )
        ctx.exit(EXIT_DEADLINE)
    verdict = delivery_verdict(plan.request_ids, summary.latest)
    if verdict is not None:
        click.echo(f"Error: {verdict[1]}", err=True)
        ctx.exit(EXIT_UNDELIVERED)
