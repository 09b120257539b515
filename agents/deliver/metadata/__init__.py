"""Provenance metadata written into delivered files by editing the container, never the pixels.

Re-encoding would cost time and quality and change the bytes the validate stage approved; the
format modules only splice metadata chunks/segments next to the untouched image data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agents.deliver.metadata.errors import MetadataError
from agents.deliver.metadata.fields import DIGITAL_SOURCE_TYPE, Provenance, provenance_for
from agents.deliver.metadata.frontmatter import MARKDOWN_TYPES, with_front_matter
from agents.deliver.metadata.jpeg import stamp_jpeg
from agents.deliver.metadata.png import stamp_png
from agents.deliver.metadata.sidecar import sidecar_json
from agents.deliver.metadata.webp import stamp_webp
from agents.deliver.metadata.xmp import xmp_packet

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "MetadataError",
    "Provenance",
    "Stamped",
    "provenance_for",
    "sidecar_json",
    "stamp",
    "stamp_jpeg",
    "stamp_png",
    "stamp_webp",
    "with_front_matter",
    "xmp_packet",
]

_STAMPERS: dict[str, Callable[[bytes, Provenance], bytes]] = {
    "image/png": stamp_png,
    "image/jpeg": stamp_jpeg,
    "image/jpg": stamp_jpeg,
    "image/webp": stamp_webp,
}


@dataclass(frozen=True, slots=True)
class Stamped:
    """The file to deliver and, for assets that cannot carry metadata, a JSON sidecar."""

    data: bytes
    sidecar: bytes | None


def stamp(data: bytes, media_type: str, p: Provenance) -> Stamped:
    """Provenance embedded for PNG, JPEG and WebP; a sidecar for the rest.

    Markdown also gets the provenance as YAML front matter (when its own front matter, if
    any, parses); other text is delivered byte for byte as generated.

    An image type we cannot edit (e.g. GIF) also gets a sidecar rather than an error, so the
    provenance is never silently lost. Raises :class:`MetadataError` for malformed images.
    """
    base = media_type.split(";", 1)[0].strip().lower()
    stamper = _STAMPERS.get(base)
    if stamper is None:
        if base in MARKDOWN_TYPES:
            data = with_front_matter(data, p) or data
        return Stamped(data=data, sidecar=sidecar_json(p))
    return Stamped(data=stamper(data, p), sidecar=None)
