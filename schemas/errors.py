"""The root of every exception assetline raises.

Each exception carries a stable ``code`` (the same dotted codes that completions, dead-letter
headers and alerts carry), so a caller can branch on ``err.code`` instead of on class names,
and ``except AssetlineError`` catches everything the project raises on purpose.

It lives with the contracts because the codes are part of them, and because the lowest layer
is the only place every other layer may import from.
"""

from __future__ import annotations

from typing import ClassVar


class AssetlineError(Exception):
    """Base of every project exception; ``code`` is stable and machine-readable."""

    code: ClassVar[str] = "assetline.error"
