"""stamp_jpeg: EXIF and XMP APP1 segments spliced in; scan data untouched."""

from __future__ import annotations

import dataclasses
import io
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from types import ModuleType

import pytest
from PIL import Image

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, MetadataError, Provenance, stamp_jpeg
from agents.deliver.metadata.jpeg import XMP_HEADER
from agents.deliver.metadata.xmp import NS_IPTC_EXT

MakeImage = Callable[..., bytes]
Decode = Callable[[bytes], tuple[str, tuple[int, int], bytes]]
ARTIST, COPYRIGHT, DESCRIPTION, ORIENTATION = 0x013B, 0x8298, 0x010E, 0x0112


def _markers(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of the segments before SOS."""
    out = []
    pos = 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack_from(">H", data, pos + 2)
        out.append((data[pos + 1], data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return out


def _scan(data: bytes) -> bytes:
    return data[data.index(b"\xff\xda") :]


@pytest.fixture(params=["RGB", "L", "CMYK"])
def jpeg(request: pytest.FixtureRequest, make_image: MakeImage) -> bytes:
    return make_image("JPEG", request.param, quality=90)


def test_pixels_identical(jpeg: bytes, provenance: Provenance, decode: Decode) -> None:
    stamped = stamp_jpeg(jpeg, provenance)
    assert stamped != jpeg
    assert decode(stamped) == decode(jpeg)
    assert _scan(stamped) == _scan(jpeg)


def test_segments_follow_jfif(make_image: MakeImage, provenance: Provenance) -> None:
    data = make_image("JPEG")
    assert _markers(data)[0][1].startswith(b"JFIF\x00")
    markers = _markers(stamp_jpeg(data, provenance))
    assert markers[0][1].startswith(b"JFIF\x00")
    assert markers[1][0] == 0xE1
    assert markers[1][1].startswith(b"Exif\x00\x00")
    assert markers[2][0] == 0xE1
    assert markers[2][1].startswith(XMP_HEADER)


def test_pillow_reads_exif(jpeg: bytes, provenance: Provenance) -> None:
    p = dataclasses.replace(provenance, copyright="(c) 2026 ACME & <Co>", creator='A "B" C')
    with Image.open(io.BytesIO(stamp_jpeg(jpeg, p))) as im:
        exif = im.getexif()
    assert exif[ARTIST] == 'A "B" C'
    assert exif[COPYRIGHT] == "(c) 2026 ACME & <Co>"
    assert exif[DESCRIPTION] == provenance.description()


def test_xmp_via_pillow(jpeg: bytes, provenance: Provenance) -> None:
    with Image.open(io.BytesIO(stamp_jpeg(jpeg, provenance))) as im:
        xmp = im.info["xmp"]
    root = ET.fromstring(xmp)
    assert root.findtext(f".//{{{NS_IPTC_EXT}}}DigitalSourceType") == DIGITAL_SOURCE_TYPE


def test_pyexiv2_reads_exif_and_xmp(
    jpeg: bytes, provenance: Provenance, pyexiv2: ModuleType
) -> None:
    with pyexiv2.ImageData(stamp_jpeg(jpeg, provenance)) as img:
        exif = img.read_exif()
        xmp = img.read_xmp()
    # exiv2 reads EXIF text as UTF-8, so non-ASCII values survive there.
    assert exif["Exif.Image.Artist"] == provenance.creator
    assert exif["Exif.Image.Copyright"] == provenance.copyright
    assert xmp["Xmp.iptcExt.DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert xmp["Xmp.dc.creator"] == [provenance.creator]
    assert xmp["Xmp.assetline.tenant"] == "acme"


def test_idempotent(jpeg: bytes, provenance: Provenance) -> None:
    once = stamp_jpeg(jpeg, provenance)
    assert stamp_jpeg(once, provenance) == once


def test_restamp_replaces_metadata(
    jpeg: bytes, provenance: Provenance, other_provenance: Provenance
) -> None:
    restamped = stamp_jpeg(stamp_jpeg(jpeg, provenance), other_provenance)
    assert restamped == stamp_jpeg(jpeg, other_provenance)
    app1 = [p for m, p in _markers(restamped) if m == 0xE1]
    assert len(app1) == 2


def test_existing_exif_orientation_kept(provenance: Provenance, decode: Decode) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[ARTIST] = "old"
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (9, 9, 9)).save(out, "JPEG", exif=exif.tobytes())
    stamped = stamp_jpeg(out.getvalue(), provenance)
    with Image.open(io.BytesIO(stamped)) as im:
        got = im.getexif()
    assert got[ORIENTATION] == 6
    assert got[ARTIST] != "old"
    assert decode(stamped) == decode(out.getvalue())
    assert stamp_jpeg(stamped, provenance) == stamped


def test_xmp_too_large(make_image: MakeImage, provenance: Provenance) -> None:
    p = dataclasses.replace(provenance, prompt="x" * 70_000)
    with pytest.raises(MetadataError, match="at most 65533"):
        stamp_jpeg(make_image("JPEG"), p)


def test_not_a_jpeg(make_image: MakeImage, provenance: Provenance) -> None:
    with pytest.raises(MetadataError, match="not a JPEG"):
        stamp_jpeg(make_image("PNG"), provenance)
    with pytest.raises(MetadataError, match="not a JPEG"):
        stamp_jpeg(b"hello", provenance)


@pytest.mark.parametrize("cut", [2, 4, 10, 30])
def test_truncated_jpeg(make_image: MakeImage, provenance: Provenance, cut: int) -> None:
    with pytest.raises(MetadataError, match="truncated JPEG"):
        stamp_jpeg(make_image("JPEG")[:cut], provenance)


def test_garbage_between_segments(provenance: Provenance) -> None:
    with pytest.raises(MetadataError, match="expected a marker"):
        stamp_jpeg(b"\xff\xd8\x00\x00\x00", provenance)
