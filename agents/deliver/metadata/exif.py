"""EXIF (TIFF) payload with the provenance tags, built with Pillow without decoding pixels."""

from __future__ import annotations

import struct

from PIL import Image

from agents.deliver.metadata.fields import Provenance
from agents.deliver.metadata.xmp import xml_safe

ARTIST = 0x013B
COPYRIGHT = 0x8298
IMAGE_DESCRIPTION = 0x010E

_EXIF_HEADER = b"Exif\x00\x00"


def _value(text: str) -> str | bytes:
    # EXIF ASCII cannot hold other characters; UTF-8 bytes are what exiv2 and exiftool read.
    text = xml_safe(text)
    return text if text.isascii() else text.encode("utf-8")


def exif_tiff(p: Provenance, existing: bytes | None = None) -> bytes:
    """TIFF-structured EXIF (no ``Exif\\0\\0`` header) with Artist, Copyright, Description.

    Existing tags (notably Orientation, which changes how the pixels are shown) are kept; an
    existing block Pillow cannot parse is replaced, since it was unreadable anyway.
    """
    exif = Image.Exif()
    if existing:
        try:
            exif.load(existing)
        except (SyntaxError, ValueError, KeyError, IndexError, OSError, struct.error):
            exif = Image.Exif()
    for tag in (ARTIST, COPYRIGHT):
        exif.pop(tag, None)
    if p.creator is not None:
        exif[ARTIST] = _value(p.creator)
    if p.copyright is not None:
        exif[COPYRIGHT] = _value(p.copyright)
    exif[IMAGE_DESCRIPTION] = _value(p.description())
    data = exif.tobytes()
    return data.removeprefix(_EXIF_HEADER)
