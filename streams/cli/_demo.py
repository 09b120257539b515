"""``assetline demo``: broker + worker + a demo campaign, end to end, then tidy up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from streams.broker import BrokerError, LocalBroker, assetline_home
from streams.cli._common import load_settings, run
from streams.client import LineClient, await_completions, open_completion_reader
from streams.demo import DEMO_PROFILE, demo_requests, summary_table
from streams.records import AssetCompleted, CompletionStatus, GenerationRequest
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from streams.worker_process import WorkerProcess


async def run_campaign(
    settings: Settings, requests: list[GenerationRequest], timeout: float
) -> dict[str, list[AssetCompleted]]:
    reader = await open_completion_reader(settings)
    try:
        async with LineClient(settings) as client:
            await client.submit(requests)
        click.echo(f"submitted {len(requests)} requests; waiting for completions ...")
        return await await_completions(
            settings,
            [r.request_id for r in requests],
            timeout=timeout,
            consumer=reader,
            on_completion=lambda d: click.echo(f"  {d.status.value:<9} {d.request_id}"),
        )
    finally:
        await reader.stop()


@click.command()
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait.")
@click.option("--keep-broker", is_flag=True, help="Leave a broker the demo started running.")
def demo(timeout: float, keep_broker: bool) -> None:
    """Run the demo campaign (3 personas x 2 locales x {image, copy}) through a real line."""
    settings = load_settings()
    external = bool(
        os.environ.get("KAFKA_BOOTSTRAP") or os.environ.get("ASSETLINE_KAFKA_BOOTSTRAP")
    )
    broker: LocalBroker | None = None
    started_broker = False
    if not external:
        broker = LocalBroker()
        started_broker = not broker.status().answering
        click.echo("starting local Kafka broker ..." if started_broker else "using running broker")
        try:
            bootstrap = broker.up(timeout=120)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from None
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    run_dir = assetline_home() / "var" / "demo"
    if settings.profiles_dir is None:  # the embedded brand profile the demo requests name
        profiles = run_dir / "profiles"
        profiles.mkdir(parents=True, exist_ok=True)
        (profiles / "demo.yaml").write_text(DEMO_PROFILE, encoding="utf-8")
        settings = settings.model_copy(update={"profiles_dir": profiles})
    worker = WorkerProcess(settings, log_path=run_dir / "worker.log")
    requests = demo_requests(run_id=time.strftime("demo-%Y%m%d-%H%M%S"))
    started = time.perf_counter()
    try:
        run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)), settings)
        worker.start()
        click.echo(f"worker pid {worker.pid} (log: {worker.log_path})")
        completions = run(run_campaign(settings, requests, timeout), settings)
    finally:
        worker.stop()
        if broker is not None and started_broker and not keep_broker:
            broker.down()
    elapsed = time.perf_counter() - started
    click.echo("")
    click.echo(summary_table(requests, completions))
    delivered = sum(
        1 for done in completions.values() if done[-1].status is CompletionStatus.DELIVERED
    )
    missing = [r.request_id for r in requests if r.request_id not in completions]
    click.echo(
        f"\n{delivered}/{len(requests)} delivered in {elapsed:.1f}s; "
        f"files under {Path(settings.delivery_dir).resolve()}"
    )
    if missing:
        raise click.ClickException(
            f"{len(missing)} request(s) got no completion; see {worker.log_path}:\n"
            + worker.log_tail(20)
        )
