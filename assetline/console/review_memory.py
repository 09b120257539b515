"""The review queue's filters and page, remembered per signed-in user so that ``/review``
resumes where the reviewer left.

Kept in a cookie signed like the session (itsdangerous, the console secret, its own salt), so
every console process with the secret reads it and nothing is stored on the server. The cookie
names its user and is ignored for anyone else (two people sharing a browser each get their own
queue back). It only chooses what the queue shows: it grants nothing, and decisions are still
checked against the session and its CSRF token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from itsdangerous import BadSignature, URLSafeTimedSerializer

from assetline.console.review_nav import chosen_in

COOKIE: Final = "assetline_review"
#: Remembered across sign-ins for a month, like the queue position in Label Studio or Argilla.
MAX_AGE_S: Final = 30 * 24 * 3600


@dataclass(frozen=True)
class Where:
    """A place in the queue: the chosen filters and the page."""

    chosen: dict[str, str] = field(default_factory=dict)
    page: int = 1


@dataclass(frozen=True)
class QueueMemory:
    """Writes and reads the remembered place of a user (``names``: the filters there are)."""

    secret: bytes
    names: Sequence[str]

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt="assetline.console.review-queue")

    def dump(self, user: str, where: Where) -> str:
        return str(self._serializer().dumps({"u": user, "f": where.chosen, "p": where.page}))

    def load(self, user: str, cookie: str | None) -> Where | None:
        """``user``'s remembered place, or None when absent, forged, expired or another user's."""
        if not cookie:
            return None
        try:
            data = self._serializer().loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("u") != user:
            return None
        chosen, page = data.get("f"), data.get("p")
        if not isinstance(chosen, dict) or not isinstance(page, int) or page < 1:
            return None
        return Where(chosen_in(chosen, self.names), page)
