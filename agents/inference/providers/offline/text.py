"""Deterministic offline copy: plausible marketing text with no model behind it.

Every choice is taken from ``seed`` (never from a global RNG or the clock), so the same request
content always yields the same characters - which keeps blob addresses and tests stable.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CopyParts",
    "compose_copy",
    "fill_prompt",
    "locale_language",
    "render_copy",
    "trim_text",
]


@dataclass(frozen=True)
class _Phrasing:
    """One locale's building blocks; ``${subject}`` and ``${audience}`` are filled per request."""

    bodies: tuple[str, ...]
    ctas: tuple[str, ...]
    everyone: str


_PHRASINGS: Final[Mapping[str, _Phrasing]] = {
    "en": _Phrasing(
        bodies=(
            "Discover ${subject}, made for ${audience}.",
            "${subject}: designed with ${audience} in mind.",
            "Meet ${subject}, the easy choice for ${audience}.",
        ),
        ctas=("Shop now.", "Learn more today.", "Try it now."),
        everyone="everyone",
    ),
    "de": _Phrasing(
        bodies=(
            "Entdecken Sie ${subject}, gemacht für ${audience}.",
            "${subject}: entwickelt für ${audience}.",
            "Lernen Sie ${subject} kennen, die einfache Wahl für ${audience}.",
        ),
        ctas=("Jetzt kaufen.", "Jetzt mehr erfahren.", "Jetzt ausprobieren."),
        everyone="alle",
    ),
    "fr": _Phrasing(
        bodies=(
            "Découvrez ${subject}, pensé pour ${audience}.",
            "${subject} : conçu pour ${audience}.",
            "Voici ${subject}, le choix facile pour ${audience}.",
        ),
        ctas=("Achetez maintenant.", "En savoir plus.", "Essayez dès aujourd'hui."),
        everyone="tous",
    ),
    "es": _Phrasing(
        bodies=(
            "Descubre ${subject}, pensado para ${audience}.",
            "${subject}: diseñado para ${audience}.",
            "Conoce ${subject}, la opción fácil para ${audience}.",
        ),
        ctas=("Compra ahora.", "Descubre más.", "Pruébalo hoy."),
        everyone="todos",
    ),
}
_DEFAULT_LANGUAGE: Final = "en"
_TRAILING_JUNK: Final = " \t\r\n,;:-\u2013\u2014/|([{"  # incl. en and em dash


def fill_prompt(prompt: str, variables: Mapping[str, str]) -> str:
    """``${name}`` placeholders filled from ``variables``; unknown ones stay, never an error."""
    return string.Template(prompt).safe_substitute(variables)


def locale_language(locale: str | None) -> str:
    """Language of a BCP 47-ish tag ("de-DE", "de_DE", "DE"), falling back to English."""
    if not locale:
        return _DEFAULT_LANGUAGE
    language = locale.replace("_", "-").split("-", 1)[0].strip().lower()
    return language if language in _PHRASINGS else _DEFAULT_LANGUAGE


def trim_text(text: str, max_chars: int | None) -> str:
    """At most ``max_chars`` code points, cut at a word boundary when one exists.

    Only a text that is empty to begin with comes back empty: a first word longer than the limit
    is cut mid-word rather than dropped, because an empty asset is worse than a clipped one.
    """
    if max_chars is None or len(text) <= max_chars:
        return text
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    cut = text[:max_chars]
    if not text[max_chars].isspace():
        boundary = max(cut.rfind(" "), cut.rfind("\n"), cut.rfind("\t"))
        if boundary > 0:
            cut = cut[:boundary]
    trimmed = cut.rstrip(_TRAILING_JUNK)
    return trimmed or text[:max_chars]


@dataclass(frozen=True)
class CopyParts:
    """The pieces of one piece of copy, so JSON fields and images can reuse them separately."""

    headline: str
    body: str
    cta: str
    language: str

    @property
    def full(self) -> str:
        """Headline, body and call to action as one text."""
        parts = (self.headline, self.body, self.cta)
        return " ".join(part for part in parts if part)


def _subject(prompt: str, variables: Mapping[str, str]) -> str:
    """What the copy talks about: the product if named, else the (filled) prompt itself."""
    for key in ("product", "subject", "headline"):
        value = variables.get(key, "").strip()
        if value:
            return value
    filled = " ".join(fill_prompt(prompt, variables).split())
    return filled.rstrip(" .!?") or "it"


def compose_copy(
    prompt: str, variables: Mapping[str, str], seed: int, locale: str | None = None
) -> CopyParts:
    """Pick a locale phrasing by seed and fill it; ``locale`` overrides ``variables["locale"]``."""
    language = locale_language(locale or variables.get("locale"))
    phrasing = _PHRASINGS[language]
    audience = variables.get("persona", "").strip() or phrasing.everyone
    body_template = phrasing.bodies[seed % len(phrasing.bodies)]
    body = string.Template(body_template).safe_substitute(
        subject=_subject(prompt, variables), audience=audience
    )
    cta = phrasing.ctas[(seed >> 8) % len(phrasing.ctas)]
    headline = " ".join(variables.get("headline", "").split())
    return CopyParts(headline=headline, body=body, cta=cta, language=language)


def render_copy(
    prompt: str,
    variables: Mapping[str, str],
    max_chars: int | None,
    seed: int,
    locale: str | None = None,
) -> str:
    """Marketing copy in the request's locale, within ``max_chars`` and never empty."""
    return trim_text(compose_copy(prompt, variables, seed, locale).full, max_chars)
