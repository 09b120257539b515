"""Scrub secrets from text bound for events, errors and logs, in every form a secret takes.

A key seldom shows up verbatim in an error: httpx quotes a header it rejects as a bytes repr
(``b'Bearer sk-...\\n'``), a JSON error body escapes it (``\\n``, ``\\u00e9``), a URL
percent-encodes it, a Basic ``Authorization`` header base64-encodes ``user:key``, and an
error that quotes another error escapes it twice. Replacing only the raw text misses all of
those, so :func:`secret_forms` lists every such rendering and :func:`redact` replaces each.

Redact before cutting text to length: a key cut at the boundary no longer matches any form,
so :func:`redact_and_truncate` is the one way to bound a message that may hold a secret.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_CHARS", "redact", "redact_and_truncate", "secret_forms"]

MASK: Final = "***"
#: Shorter "secrets" are not scrubbed: replacing "1" everywhere would garble every message.
MIN_SECRET_CHARS: Final = 8

_PERCENT_HEX: Final = re.compile(r"%[0-9A-F]{2}")


def _json(text: str) -> str:
    return json.dumps(text)[1:-1]


def _json_unicode(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _repr(text: str) -> str:
    return repr(text)[1:-1]


def _bytes_repr(text: str) -> str:
    return repr(text.encode("utf-8", "surrogatepass"))[2:-1]


def _unicode_escape(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def _url(text: str) -> str:
    return quote(text, safe="")


def _url_lower(text: str) -> str:
    return _PERCENT_HEX.sub(lambda match: match.group(0).lower(), quote(text, safe=""))


def _url_plus(text: str) -> str:
    return quote_plus(text, safe="")


_ESCAPES: Final[tuple[Callable[[str], str], ...]] = (
    _json,
    _json_unicode,
    _repr,
    _bytes_repr,
    _unicode_escape,
    _url,
    _url_lower,
    _url_plus,
)


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that encode only ``data``, wherever it sits in a longer value.

    Base64 works in 3-byte groups, so the key's encoding inside ``user:key`` depends on how
    many bytes precede it; for each of the three alignments, keep the characters that no
    neighbouring byte influences (standard and URL-safe alphabets).
    """
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        start = 4 if offset else 0
        end = 4 * ((offset + len(data)) // 3)
        core = encoded[start:end]
        if len(core) >= MIN_SECRET_CHARS:
            cores.add(core)
            cores.add(core.replace("+", "-").replace("/", "_"))
    return cores


@functools.lru_cache(maxsize=256)
def secret_forms(secret: str) -> tuple[str, ...]:
    """Every rendering of ``secret`` worth scrubbing, longest first (empty when too short).

    The raw text and its whitespace-stripped core, each escaped once or twice by JSON,
    Python repr (str and bytes), ``unicode_escape`` and percent-encoding, plus base64.
    """
    if len(secret.strip()) < MIN_SECRET_CHARS:
        return ()
    bases = {secret, secret.strip()}
    forms: set[str] = set(bases)
    for base in bases:
        once = {escape(base) for escape in _ESCAPES}
        forms |= once
        forms |= {escape(form) for form in once for escape in _ESCAPES}
        forms |= _base64_cores(base.encode("utf-8", "surrogatepass"))
    return tuple(
        sorted((form for form in forms if len(form) >= MIN_SECRET_CHARS), key=len, reverse=True)
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret (of at least 8 characters) masked."""
    forms = sorted({form for secret in secrets for form in secret_forms(secret)}, key=len)
    for form in reversed(forms):  # longest first: a long form may contain a shorter one
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_and_truncate(text: str, secrets: Iterable[str], limit: int) -> str:
    """:func:`redact`, then cut to ``limit`` characters (an ellipsis marks the cut).

    In this order, never the other: a secret cut in half by the limit matches no form.
    """
    text = redact(text, secrets)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text
