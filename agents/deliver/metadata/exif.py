"""EXIF (TIFF) payload with the provenance tags, built with Pillow without decoding pixels."""

from __future__ import annotations

import struct

from PIL import Image

from agents.deliver.metadata.fields import Provenance
from agents.deliver.metadata.xmp import xml_safe

ARTIST = 0x013B
COPYRIGHT = 0x8298
IMAGE_DESCRIPTION = 0x010E
ORIENTATION = 0x0112

_EXIF_HEADER = b"Exif\x00\x00"


def _value(text: str) -> str | bytes:
    # EXIF ASCII cannot hold other characters; UTF-8 bytes are what exiv2 and exiftool read.
    text = xml_safe(text)
    return text if text.isascii() else text.encode("utf-8")


def orientation(existing: bytes | None) -> int | None:
    """The Orientation tag of an EXIF block (TIFF, with or without the ``Exif`` header)."""
    if not existing:
        return None
    exif = Image.Exif()
    try:
        exif.load(existing)
        value = exif.get(ORIENTATION)
    except (SyntaxError, ValueError, KeyError, IndexError, OSError, struct.error):
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def exif_tiff(p: Provenance, existing: bytes | None = None) -> bytes:
    """TIFF-structured EXIF (no ``Exif\\0\\0`` header) with Artist, Copyright, Description.

    Of an existing block only Orientation survives (it changes how the pixels are shown);
    every other tag is dropped, so no foreign Copyright, UserComment ("not AI") or maker note
    contradicts ours. A block Pillow cannot parse is dropped whole.
    """
    exif = Image.Exif()
    turned = orientation(existing)
    if turned is not None:
        exif[ORIENTATION] = turned
    if p.creator is not None:
        exif[ARTIST] = _value(p.creator)
    if p.copyright is not None:
        exif[COPYRIGHT] = _value(p.copyright)
    exif[IMAGE_DESCRIPTION] = _value(p.description())
    data = exif.tobytes()
    return data.removeprefix(_EXIF_HEADER)
