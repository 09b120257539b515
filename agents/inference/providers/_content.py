"""What the model adapters ask for and how they read the answer back, whatever the vendor.

Chat models wrap code in markdown fences and add chatter unless told otherwise, and image
endpoints answer bytes whose format only the bytes themselves reliably tell; keeping these rules
in one place makes every adapter hand the validate stage the same kind of asset.
"""

from __future__ import annotations

import re
from typing import Final

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline.code import CODE_MEDIA_TYPES, canonical_language
from schemas.records import AssetKind, GenerationRequest

__all__ = ["check_image_size", "instructions", "media_type", "sniff_image", "strip_fence"]

TEXT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"
JSON_MEDIA_TYPE: Final = "application/json"

_FENCE: Final = re.compile(r"\A\s*```[^\n`]*\n(?P<body>.*?)\n?[ \t]*```\s*\Z", re.DOTALL)


def check_image_size(request: GenerationRequest, provider: str) -> None:
    """Refuse a non-positive width or height before it goes on the wire.

    The generate stage already refuses sizes outside the configured caps before routing
    (``AssetLimits.image_size_refusal``); this keeps an adapter safe when called directly.
    """
    for name in ("width", "height"):
        side = getattr(request.constraints, name)
        if side is not None and side < 1:
            raise ProviderError(
                "provider.bad_constraints",
                f"{provider}: image {name} must be at least 1, got {side}",
            )


def code_language(request: GenerationRequest) -> str:
    """The language to ask for: canonical when the line knows it (unset means python)."""
    try:
        return canonical_language(request.constraints.language)
    except ProviderError:  # a remote model may well write languages the offline one cannot
        return (request.constraints.language or "").strip().lower() or "python"


def instructions(request: GenerationRequest, *, schema_in_prompt: bool = False) -> str:
    """A system message that makes a chat model answer with the bare asset.

    ``schema_in_prompt`` spells out the JSON Schema for APIs that cannot enforce it.
    """
    constraints = request.constraints
    if request.kind is AssetKind.JSON:
        text = "Reply with exactly one JSON document and nothing else: no prose, no markdown."
        if schema_in_prompt and constraints.json_schema:
            text += f" The document must match this JSON Schema: {constraints.json_schema}"
        return text
    if request.kind is AssetKind.CODE:
        return (
            f"Reply with only {code_language(request)} code, complete and runnable: "
            "no explanation, no markdown fences."
        )
    text = "Reply with only the requested text: no preamble, no quotes, no markdown."
    if constraints.max_chars is not None:
        text += f" Use at most {constraints.max_chars} characters."
    if constraints.language:
        text += f" Write in {constraints.language}."
    return text


def media_type(request: GenerationRequest) -> str:
    """Media type of a TEXT, JSON or CODE answer (the validate stage dispatches on it)."""
    if request.kind is AssetKind.JSON:
        return JSON_MEDIA_TYPE
    if request.kind is AssetKind.CODE:
        return CODE_MEDIA_TYPES.get(code_language(request), TEXT_MEDIA_TYPE)
    return TEXT_MEDIA_TYPE


def strip_fence(text: str) -> str:
    """The body of one markdown code fence wrapping the whole answer; else ``text`` as is."""
    match = _FENCE.match(text)
    return match.group("body") if match else text


def sniff_image(data: bytes) -> str | None:
    """The media type the bytes' magic number announces (PNG, JPEG, WebP), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
