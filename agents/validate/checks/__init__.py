"""Validation checks; :func:`default_checks` is the standard set the validate stage runs."""

from __future__ import annotations

from agents.validate.checks._base import Check, Subject
from agents.validate.checks.image import (
    DEFAULT_MAX_PIXELS,
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
    max_pixels: int = DEFAULT_MAX_PIXELS, *, prober: ImageProber | None = None
) -> tuple[Check, ...]:
    """A fresh standard set; the image checks share one prober, so build one set per worker.

    Pass ``prober`` to share it with further image checks (a brand policy's), so that an image
    is still decoded only once per suite.
    """
    prober = prober if prober is not None else ImageProber(max_pixels)
    return (
        ImageDecodes(prober),
        ImageFormat(prober),
        ImageSize(prober),
        TextNotEmpty(),
        TextMaxChars(),
        JsonParses(),
        JsonSchema(),
        CodeSyntax(),
    )
