"""``assetline broker up|down|status|fetch``: a local single-node KRaft broker."""

from __future__ import annotations

from pathlib import Path

import click

from assetline.dev.broker import BrokerError, LocalBroker


def _broker(root: Path | None, port: int, controller_port: int) -> LocalBroker:
    return LocalBroker(root, port=port, controller_port=controller_port)


_root = click.option(
    "--root", type=click.Path(path_type=Path), default=None, help="Data folder (var/kafka)."
)
_port = click.option("--port", default=9092, show_default=True, help="Client port.")
_ctrl = click.option("--controller-port", default=9093, show_default=True)


@click.group()
def broker() -> None:
    """Run a local Apache Kafka (KRaft) broker from Maven Central jars, no Docker needed."""


@broker.command()
@_root
@_port
@_ctrl
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for it.")
def up(root: Path | None, port: int, controller_port: int, timeout: float) -> None:
    """Fetch jars if needed, format storage on first start, start, wait until it answers."""
    try:
        bootstrap = _broker(root, port, controller_port).up(timeout=timeout)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(bootstrap)


@broker.command()
@_root
@_port
@_ctrl
def down(root: Path | None, port: int, controller_port: int) -> None:
    """Stop the broker (SIGTERM, then SIGKILL)."""
    stopped = _broker(root, port, controller_port).down()
    click.echo("stopped" if stopped else "not running")


@broker.command()
@_root
@_port
@_ctrl
def status(root: Path | None, port: int, controller_port: int) -> None:
    """Say whether the broker runs and answers; exit 1 if it does not."""
    state = _broker(root, port, controller_port).status()
    click.echo(
        f"running={state.running} answering={state.answering} pid={state.pid} "
        f"bootstrap={state.bootstrap}"
    )
    if not state.answering:
        raise SystemExit(1)


@broker.command()
@_root
def fetch(root: Path | None) -> None:
    """Download the Kafka jars into the cache (done by 'up' when needed)."""
    try:
        lib = LocalBroker(root).fetch()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(lib))
