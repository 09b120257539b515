"""``assetline console``: serve the operator console; make users-file entries."""

from __future__ import annotations

from pathlib import Path

import click

from assetline.cli._common import load_settings, run
from assetline.console import serve
from assetline.console.auth import ConsoleAuthError, UsersFile, check_user_id, hash_password


def _password(prompt: bool) -> str:
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=prompt, err=True))


@click.group("console", invoke_without_command=True)
@click.option("--host", default=None, help="Listen address [ASSETLINE_CONSOLE_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [ASSETLINE_CONSOLE_PORT, 8086].")
@click.pass_context
def console_group(ctx: click.Context, host: str | None, port: int | None) -> None:
    """The web console: review queue (and more pages). Needs the broker and the blob store."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings(console_host=host, console_port=port)
    if settings.console_users_file is None and not settings.console_proxy_user_header:
        click.echo(
            "Warning: no ASSETLINE_CONSOLE_USERS_FILE and no proxy header: nobody can sign in "
            "(make one with 'assetline console add-user').",
            err=True,
        )

    def ready(url: str) -> None:
        click.echo(f"console on {url}", err=True)

    run(serve(settings, settings.console_host, settings.console_port, on_ready=ready), settings)


@console_group.command("hash-password")
def hash_password_cmd() -> None:
    """Print a scrypt hash of a password (asked twice) for a 'user:hash' users-file line."""
    click.echo(hash_password(_password(True)))


@console_group.command("add-user")
@click.argument("user")
@click.option(
    "--users-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Users file [ASSETLINE_CONSOLE_USERS_FILE].",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def add_user(user: str, users_file: Path | None, password_stdin: bool) -> None:
    """Add USER (or replace their password) in the users file."""
    path = users_file or load_settings().console_users_file
    if path is None:
        raise click.ClickException(
            "no users file: pass --users-file or set ASSETLINE_CONSOLE_USERS_FILE"
        )
    try:
        check_user_id(user)
        password = (
            click.get_text_stream("stdin").readline().rstrip("\n")
            if password_stdin
            else _password(True)
        )
        if not password:
            raise click.ClickException("empty password")
        UsersFile(path).add(user, password)
    except ConsoleAuthError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{user} added to {path}", err=True)
