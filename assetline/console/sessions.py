"""Sessions and CSRF tokens: a signed, time-limited cookie; tokens bound to the session.

The cookie carries ``{user, sid}`` signed with itsdangerous (HMAC-SHA256 over the console
secret), so any console process with the same secret accepts it and nothing is stored per
session; signing out puts the ``sid`` on a revocation list kept until the session would have
expired anyway. A CSRF token is an HMAC of ``sid`` and ``user``: another user's token, a token
of an earlier session, or none at all is refused on every POST (:func:`check_csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "assetline_session"


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    csrf: str


@dataclass
class SessionSigner:
    """Issues and reads session cookies; holds the revocation list of signed-out sessions."""

    secret: bytes
    ttl_s: float
    _revoked: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._serializer = URLSafeTimedSerializer(self.secret, salt="assetline.console.session")

    def csrf_for(self, user: str, sid: str) -> str:
        return hmac.new(self.secret, f"csrf\0{sid}\0{user}".encode(), hashlib.sha256).hexdigest()

    def issue(self, user: str) -> tuple[str, Session]:
        """A new session for ``user``: (cookie value, session)."""
        sid = secrets.token_urlsafe(18)
        cookie = self._serializer.dumps({"u": user, "s": sid})
        return cookie, Session(user, sid, self.csrf_for(user, sid))

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when absent, forged, expired or signed out."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=int(self.ttl_s))
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user, sid = data.get("u"), data.get("s")
        if not isinstance(user, str) or not isinstance(sid, str) or sid in self._revoked:
            return None
        return Session(user, sid, self.csrf_for(user, sid))

    def revoke(self, session: Session) -> None:
        now = time.monotonic()
        self._revoked = {s: t for s, t in self._revoked.items() if t > now}
        self._revoked[session.sid] = now + self.ttl_s


def check_csrf(session: Session, token: str | None) -> bool:
    """Whether ``token`` is this session's CSRF token (constant-time)."""
    return token is not None and hmac.compare_digest(session.csrf, token)
