"""Console sign-in pieces: scrypt hashes, the users file, signed sessions and CSRF tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetline.console.auth import (
    ConsoleAuthError,
    SignInThrottle,
    UsersFile,
    hash_password,
    parse_users,
    verify_password,
)
from assetline.console.sessions import SessionSigner, check_csrf


def test_a_hash_verifies_its_password_only_and_salts_differ() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second  # per-user random salt
    assert verify_password("s3cret", first)
    assert verify_password("s3cret", second)
    assert not verify_password("s3cret!", first)
    assert not verify_password("s3cret", "scrypt$garbage")


def test_users_file_add_check_and_reload(tmp_path: Path) -> None:
    users = UsersFile(tmp_path / "users")
    users.add("ana", "pw-ana")
    users.add("bo", "pw-bo")
    assert users.check("ana", "pw-ana")
    assert users.check("bo", "pw-bo")
    assert not users.check("ana", "pw-bo")
    assert not users.check("nobody", "pw-ana")
    users.add("ana", "new")  # replaced, not duplicated
    assert (tmp_path / "users").read_text().count("ana:") == 1
    assert UsersFile(tmp_path / "users").check("ana", "new")


def test_a_bad_users_line_names_its_number() -> None:
    with pytest.raises(ConsoleAuthError, match="users:2: expected 'user:scrypt"):
        parse_users("# reviewers\nana plain-password\n", "users")
    with pytest.raises(ConsoleAuthError, match="users:1: user id"):
        parse_users("../x:scrypt$1$1$1$AA==$AA==\n", "users")


def test_sessions_are_signed_bound_to_their_user_and_revocable() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    cookie_a, ana = signer.issue("ana")
    _, bo = signer.issue("bo")
    read = signer.read(cookie_a)
    assert read is not None
    assert read.user == "ana"
    assert read.csrf == ana.csrf
    assert check_csrf(ana, ana.csrf)
    assert not check_csrf(ana, bo.csrf)
    assert not check_csrf(ana, None)
    signed, _, signature = cookie_a.rpartition(".")
    # Change a whole base64 digit: the last digit carries padding bits that a change may not touch.
    tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert signer.read(f"{signed}.{tampered}") is None
    assert signer.read(cookie_a.replace("eyJ1", "eyJ2", 1)) is None  # payload changed
    assert SessionSigner(b"o" * 32, ttl_s=60).read(cookie_a) is None  # other secret
    signer.revoke(ana)
    assert signer.read(cookie_a) is None


def test_sign_in_throttle_blocks_a_name_after_its_failures() -> None:
    throttle = SignInThrottle(limit=3, window_s=60)
    for _ in range(3):
        assert not throttle.blocked("ana")
        throttle.failed("ana")
    assert throttle.blocked("ana")
    assert not throttle.blocked("bo")
    assert not SignInThrottle(limit=3, window_s=0.0).blocked("ana")
