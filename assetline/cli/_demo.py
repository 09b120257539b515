"""``assetline demo``: broker + worker + a demo campaign, end to end, then tidy up.

The pieces are in :mod:`assetline.dev` (the broker, the worker process, the demo campaign);
this module starts them in order, prints, and stops what it started.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from assetline.cli._common import delivery_verdict, fail, load_settings, run
from assetline.dev.broker import BrokerError, LocalBroker
from assetline.dev.child_worker import WorkerProcess
from assetline.dev.demo import (
    delivered_count,
    demo_requests,
    demo_run_dir,
    quiet_leader_elections,
    run_demo_campaign,
    summary_table,
    uses_external_broker,
    write_demo_profiles,
)
from assetline.review import waiting_for_review
from schemas.records import AssetCompleted
from streams.topics import ensure_topics, line_topic_specs


def _echo_submitted(count: int) -> None:
    click.echo(f"submitted {count} requests; waiting for completions ...")


def _echo_completion(done: AssetCompleted) -> None:
    click.echo(f"  {done.status.value:<9} {done.request_id}")


@click.command()
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait.")
@click.option("--keep-broker", is_flag=True, help="Leave a broker the demo started running.")
@click.option(
    "--bootstrap",
    default=None,
    metavar="HOST:PORT",
    help="Use this running Kafka instead of starting a local one (also KAFKA_BOOTSTRAP).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65534),
    default=9092,
    show_default=True,
    help="Client port of the local broker the demo starts (its controller takes PORT+1).",
)
@click.pass_context
def demo(
    ctx: click.Context, timeout: float, keep_broker: bool, bootstrap: str | None, port: int
) -> None:
    """Run the demo campaign (3 personas x 2 locales x {image, copy}) through a real line.

    Exits 0 only when all 12 requests were DELIVERED (3: some got no completion in time,
    4: some completed otherwise).
    """
    settings = load_settings(kafka_bootstrap=bootstrap)
    broker: LocalBroker | None = None
    started_broker = False
    if not uses_external_broker(bootstrap):
        broker = LocalBroker(port=port, controller_port=port + 1)
        started_broker = not broker.status().answering
        click.echo("starting local Kafka broker ..." if started_broker else "using running broker")
        try:
            local = broker.up(timeout=120)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from None
        settings = settings.model_copy(update={"kafka_bootstrap": local})
    run_dir = demo_run_dir()
    if settings.profiles_dir is not None:
        click.echo(
            f"using the demo's own brand profile ({settings.profiles_dir} from "
            "ASSETLINE_PROFILES_DIR is not used)"
        )
    settings = settings.model_copy(update={"profiles_dir": write_demo_profiles(run_dir)})
    worker = WorkerProcess(settings, log_path=run_dir / "worker.log")
    requests = demo_requests(run_id=time.strftime("demo-%Y%m%d-%H%M%S"))
    started = time.perf_counter()
    try:
        with quiet_leader_elections():
            run(ensure_topics(settings, line_topic_specs(settings)), settings)
            worker.start()
            click.echo(f"worker pid {worker.pid} (log: {worker.log_path})")
            completions = run(
                run_demo_campaign(
                    settings,
                    requests,
                    timeout,
                    on_submitted=_echo_submitted,
                    on_completion=_echo_completion,
                ),
                settings,
            )
            waiting = {r.request_id for r in requests} - set(completions)
            in_review = run(waiting_for_review(settings, waiting), settings) if waiting else set()
    finally:
        worker.stop()
        if broker is not None and started_broker and not keep_broker:
            broker.down()
    elapsed = time.perf_counter() - started
    click.echo("")
    click.echo(summary_table(requests, completions, in_review))
    click.echo(
        f"\n{delivered_count(completions)}/{len(requests)} delivered in {elapsed:.1f}s; "
        f"files under {Path(settings.delivery_dir).resolve()}"
    )
    ids = [r.request_id for r in requests]
    verdict = delivery_verdict(ids, {rid: done[-1] for rid, done in completions.items()})
    if verdict is not None:
        code, why = verdict
        fail(ctx, code, f"{why}; worker log: {worker.log_path}")
