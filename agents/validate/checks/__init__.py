"""Validation checks; :func:`default_checks` is the standard set the validate stage runs."""

from __future__ import annotations

from agents.validate.checks._base import Check, Subject
from agents.validate.checks.image import (
    DEFAULT_MAX_PIXELS,
    ImageAnimation,
    ImageContainer,
    ImageDecodes,
    ImageFormat,
    ImageProbe,
    ImageProber,
    ImageSize,
    image_checks,
    probe_image,
)
from agents.validate.checks.structured import (
    DEFAULT_SYNTAX_CHECKERS,
    CodeSyntax,
    JsonParses,
    JsonSchema,
    SyntaxChecker,
    SyntaxIssue,
)
from agents.validate.checks.text import TextMaxChars, TextNotEmpty

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_SYNTAX_CHECKERS",
    "Check",
    "CodeSyntax",
    "ImageAnimation",
    "ImageContainer",
    "ImageDecodes",
    "ImageFormat",
    "ImageProbe",
    "ImageProber",
    "ImageSize",
    "JsonParses",
    "JsonSchema",
    "Subject",
    "SyntaxChecker",
    "SyntaxIssue",
    "TextMaxChars",
    "TextNotEmpty",
    "default_checks",
    "image_checks",
    "probe_image",
]


def default_checks(
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    prober: ImageProber | None = None,
    allow_animation: bool = False,
) -> tuple[Check, ...]:
    """A fresh standard set; the image checks share one prober, so build one set per worker.

    Pass ``prober`` to share it with further image checks (a brand policy's), so that an image
    is still decoded only once per suite; ``allow_animation`` when the brand accepts animated
    images (``image.animated`` refuses them otherwise).
    """
    prober = prober if prober is not None else ImageProber(max_pixels)
    return (
        ImageDecodes(prober),
        ImageFormat(prober),
        ImageSize(prober),
        ImageContainer(prober),
        ImageAnimation(prober, allow=allow_animation),
        TextNotEmpty(),
        TextMaxChars(),
        JsonParses(),
        JsonSchema(),
        CodeSyntax(),
    )
