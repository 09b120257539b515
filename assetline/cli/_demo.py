"""``assetline demo``: broker + worker + a demo campaign, end to end, then tidy up."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import click

from assetline.cli._common import delivery_verdict, fail, load_settings, run
from assetline.client import LineClient, await_completions, open_completion_reader
from assetline.dev.broker import BrokerError, LocalBroker, assetline_home
from assetline.dev.child_worker import WorkerProcess
from assetline.dev.demo import DEMO_PROFILE, DEMO_PROFILE_ID, demo_requests, summary_table
from schemas.records import AssetCompleted, CompletionStatus, GenerationRequest
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs

#: aiokafka loggers that report a partition whose leader is still being elected, retried
#: (and then fine) a moment after the demo created its topics.
ELECTION_LOGGERS = ("aiokafka.consumer.fetcher", "aiokafka.producer.sender", "aiokafka.conn")


class _LeaderElectionNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "NotLeaderForPartition" not in record.getMessage()


@contextlib.contextmanager
def quiet_leader_elections() -> Iterator[None]:
    """Drop aiokafka's NotLeaderForPartitionError lines while fresh topics elect leaders.

    The client retries them by itself; printed, they looked like the demo failing. Every
    other aiokafka message still gets through.
    """
    noise = _LeaderElectionNoise()
    loggers = [logging.getLogger(name) for name in ELECTION_LOGGERS]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


def demo_profiles(run_dir: Path) -> Path:
    """A profiles folder holding only the demo's own brand profile.

    Always this one, whatever ``ASSETLINE_PROFILES_DIR`` says: the user's folder does not
    have the ``demo`` profile the requests name, and then the demo delivered nothing.
    """
    profiles = run_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / f"{DEMO_PROFILE_ID}.yaml").write_text(DEMO_PROFILE, encoding="utf-8")
    return profiles


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
    external = bool(
        bootstrap
        or os.environ.get("KAFKA_BOOTSTRAP")
        or os.environ.get("ASSETLINE_KAFKA_BOOTSTRAP")
    )
    broker: LocalBroker | None = None
    started_broker = False
    if not external:
        broker = LocalBroker(port=port, controller_port=port + 1)
        started_broker = not broker.status().answering
        click.echo("starting local Kafka broker ..." if started_broker else "using running broker")
        try:
            local = broker.up(timeout=120)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from None
        settings = settings.model_copy(update={"kafka_bootstrap": local})
    run_dir = assetline_home() / "var" / "demo"
    if settings.profiles_dir is not None:
        click.echo(
            f"using the demo's own brand profile ({settings.profiles_dir} from "
            "ASSETLINE_PROFILES_DIR is not used)"
        )
    settings = settings.model_copy(update={"profiles_dir": demo_profiles(run_dir)})
    worker = WorkerProcess(settings, log_path=run_dir / "worker.log")
    requests = demo_requests(run_id=time.strftime("demo-%Y%m%d-%H%M%S"))
    started = time.perf_counter()
    try:
        with quiet_leader_elections():
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
    click.echo(
        f"\n{delivered}/{len(requests)} delivered in {elapsed:.1f}s; "
        f"files under {Path(settings.delivery_dir).resolve()}"
    )
    ids = [r.request_id for r in requests]
    verdict = delivery_verdict(ids, {rid: done[-1] for rid, done in completions.items()})
    if verdict is not None:
        code, why = verdict
        fail(ctx, code, f"{why}; worker log: {worker.log_path}")
