"""Who may sign in: a users file of scrypt password hashes, or a trusted reverse-proxy header.

Hashes are ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (stdlib :func:`hashlib.scrypt`): a
memory-hard KDF in the standard library, so no native extra is needed, with a random 16-byte
salt per user so equal passwords never share a hash. The users file holds one ``user:hash``
line per reviewer (``#`` comments allowed) and is re-read when it changes, so adding a
reviewer needs no restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from schemas.errors import AssetlineError

#: scrypt cost: n=2**14, r=8, p=1 is ~16 MiB and ~50 ms a check, the value RFC 7914 suggests
#: for interactive logins.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_MAXMEM: Final = 64 * 1024 * 1024
#: A user id goes into every decision; keep it printable and free of separators.
USER_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class ConsoleAuthError(AssetlineError):
    """A users file or a user id the console cannot accept; the message says which line."""

    code = "console.auth"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A new ``scrypt$...`` hash of ``password`` with a fresh random salt."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def check_user_id(user: str) -> str:
    if not USER_ID.fullmatch(user):
        raise ConsoleAuthError(
            f"user id {user[:80]!r} must be 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    return user


def parse_users(text: str, source: str) -> dict[str, str]:
    """``user:hash`` lines -> {user: hash}; a bad line names its number."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, encoded = line.partition(":")
        if not sep or not encoded.startswith("scrypt$"):
            raise ConsoleAuthError(f"{source}:{number}: expected 'user:scrypt$...'")
        try:
            users[check_user_id(user)] = encoded
        except ConsoleAuthError as exc:
            raise ConsoleAuthError(f"{source}:{number}: {exc}") from None
    return users


@dataclass
class UsersFile:
    """The users file, re-read when its modification time changes."""

    path: Path | None
    _stamp: float | None = field(default=None, init=False)
    _users: dict[str, str] = field(default_factory=dict, init=False)

    def users(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            stamp = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if stamp != self._stamp:
            self._users = parse_users(self.path.read_text("utf-8"), str(self.path))
            self._stamp = stamp
        return self._users

    def check(self, user: str, password: str) -> bool:
        """Whether ``user`` exists and ``password`` is theirs (the same work either way)."""
        encoded = self.users().get(user)
        if encoded is None:
            verify_password(password, _DUMMY_HASH)  # no timing hint that the user is unknown
            return False
        return verify_password(password, encoded)

    def add(self, user: str, password: str) -> None:
        """Add or replace ``user``'s line (the file is created when missing)."""
        assert self.path is not None
        check_user_id(user)
        lines = self.path.read_text("utf-8").splitlines() if self.path.exists() else []
        kept = [line for line in lines if line.partition(":")[0].strip() != user]
        kept.append(f"{user}:{hash_password(password)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(kept) + "\n", "utf-8")
        self.path.chmod(0o600)


_DUMMY_HASH: Final = hash_password("not a password", salt=b"\0" * 16)


@dataclass
class SignInThrottle:
    """At most ``limit`` failed sign-ins per user name in ``window_s``; then that name is refused
    until the oldest failure leaves the window (slows password guessing; a correct password
    does not clear the count early)."""

    limit: int = 10
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict, init=False)

    def _recent(self, user: str, now: float) -> deque[float]:
        times = self._failures.setdefault(user, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, user: str) -> bool:
        return len(self._recent(user, time.monotonic())) >= self.limit

    def failed(self, user: str) -> None:
        now = time.monotonic()
        self._recent(user, now).append(now)
        if len(self._failures) > 10_000:  # names never seen again go first
            self._failures = {u: t for u, t in self._failures.items() if self._recent(u, now)}
