"""``assetline console add-user`` and ``hash-password``: users-file entries that sign in."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from assetline.cli import cli
from assetline.console.auth import UsersFile, verify_password


def test_add_user_writes_a_hash_that_signs_in(tmp_path: Path) -> None:
    users = tmp_path / "users"
    runner = CliRunner()
    for user, password in (("ana", "pw-1"), ("bo", "pw-2"), ("ana", "pw-3")):
        result = runner.invoke(
            cli,
            ["console", "add-user", user, "--users-file", str(users), "--password-stdin"],
            input=password + "\n",
        )
        assert result.exit_code == 0, result.output
    assert UsersFile(users).check("ana", "pw-3")
    assert not UsersFile(users).check("ana", "pw-1")
    assert UsersFile(users).check("bo", "pw-2")
    assert oct(users.stat().st_mode & 0o777) == "0o600"
    bad = runner.invoke(
        cli, ["console", "add-user", "../x", "--users-file", str(users), "--password-stdin"]
    )
    assert bad.exit_code != 0
    assert "user id" in bad.output


def test_hash_password_prints_only_the_hash() -> None:
    result = CliRunner().invoke(cli, ["console", "hash-password"], input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("scrypt$")
    assert verify_password("s3cret", line)
