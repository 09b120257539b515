"""stamp_webp: simple files become extended ones; EXIF and XMP chunks appended, bitstream kept."""

from __future__ import annotations

import dataclasses
import io
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from types import ModuleType

import pytest
from PIL import Image, ImageCms

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, MetadataError, Provenance, stamp_webp
from agents.deliver.metadata.webp import FLAG_ALPHA, FLAG_EXIF, FLAG_ICC, FLAG_XMP
from agents.deliver.metadata.xmp import NS_IPTC_EXT

MakeImage = Callable[..., bytes]
Decode = Callable[[bytes], tuple[str, tuple[int, int], bytes]]
ARTIST, COPYRIGHT, DESCRIPTION = 0x013B, 0x8298, 0x010E

# (mode, lossless, first chunk Pillow/libwebp writes)
VARIANTS = [
    ("RGB", False, b"VP8 "),
    ("RGB", True, b"VP8L"),
    ("RGBA", False, b"VP8X"),
    ("RGBA", True, b"VP8L"),
]


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 12
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos + 4)
        out.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


@pytest.fixture(params=VARIANTS, ids=lambda v: f"{v[0]}-{'lossless' if v[1] else 'lossy'}")
def webp(request: pytest.FixtureRequest, make_image: MakeImage) -> bytes:
    mode, lossless, first = request.param
    data = make_image("WEBP", mode, lossless=lossless, quality=80)
    assert data[12:16] == first  # the case we mean to cover really is covered
    return data


def test_pixels_identical(webp: bytes, provenance: Provenance, decode: Decode) -> None:
    stamped = stamp_webp(webp, provenance)
    assert stamped != webp
    assert decode(stamped) == decode(webp)


def test_container_is_valid_extended(webp: bytes, provenance: Provenance) -> None:
    stamped = stamp_webp(webp, provenance)
    assert stamped[:4] == b"RIFF"
    assert stamped[8:12] == b"WEBP"
    assert struct.unpack_from("<I", stamped, 4)[0] == len(stamped) - 8
    chunks = _chunks(stamped)
    assert next(f for f, _ in chunks) == b"VP8X"
    assert [f for f, _ in chunks][-2:] == [b"EXIF", b"XMP "]
    flags = chunks[0][1][0]
    assert flags & FLAG_EXIF
    assert flags & FLAG_XMP
    width = int.from_bytes(chunks[0][1][4:7], "little") + 1
    height = int.from_bytes(chunks[0][1][7:10], "little") + 1
    with Image.open(io.BytesIO(webp)) as im:
        assert (width, height) == im.size
        assert bool(flags & FLAG_ALPHA) == (im.mode == "RGBA")
    image_chunks = [c for c in _chunks(webp) if c[0] in {b"VP8 ", b"VP8L", b"ALPH"}]
    assert [c for c in chunks if c[0] in {b"VP8 ", b"VP8L", b"ALPH"}] == image_chunks


def test_pillow_reads_exif(webp: bytes, provenance: Provenance) -> None:
    with Image.open(io.BytesIO(stamp_webp(webp, provenance))) as im:
        exif = im.getexif()
    assert exif[DESCRIPTION] == provenance.description()
    # Pillow decodes EXIF text as Latin-1; our UTF-8 bytes are there, byte for byte.
    assert exif[ARTIST].encode("latin-1").decode("utf-8") == provenance.creator
    assert exif[COPYRIGHT].encode("latin-1").decode("utf-8") == provenance.copyright


def test_xmp_via_pillow(webp: bytes, provenance: Provenance) -> None:
    with Image.open(io.BytesIO(stamp_webp(webp, provenance))) as im:
        xmp = im.info["xmp"]
    root = ET.fromstring(xmp)
    assert root.findtext(f".//{{{NS_IPTC_EXT}}}DigitalSourceType") == DIGITAL_SOURCE_TYPE


def test_pyexiv2_reads_exif_and_xmp(
    webp: bytes, provenance: Provenance, pyexiv2: ModuleType
) -> None:
    with pyexiv2.ImageData(stamp_webp(webp, provenance)) as img:
        exif = img.read_exif()
        xmp = img.read_xmp()
    assert exif["Exif.Image.Artist"] == provenance.creator
    assert xmp["Xmp.iptcExt.DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert xmp["Xmp.dc.rights"] == {'lang="x-default"': provenance.copyright}
    assert xmp["Xmp.assetline.verdict"] == "PASS"


def test_idempotent(webp: bytes, provenance: Provenance) -> None:
    once = stamp_webp(webp, provenance)
    assert stamp_webp(once, provenance) == once


def test_restamp_replaces(
    webp: bytes, provenance: Provenance, other_provenance: Provenance
) -> None:
    restamped = stamp_webp(stamp_webp(webp, provenance), other_provenance)
    assert restamped == stamp_webp(webp, other_provenance)
    assert [f for f, _ in _chunks(restamped)].count(b"XMP ") == 1


def test_icc_flag_and_chunk_kept(provenance: Provenance, decode: Decode) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", (10, 6), (1, 2, 3)).save(out, "WEBP", icc_profile=icc)
    data = out.getvalue()
    stamped = stamp_webp(data, provenance)
    chunks = _chunks(stamped)
    assert chunks[0][1][0] & FLAG_ICC
    assert chunks[1] == (b"ICCP", icc)
    assert decode(stamped) == decode(data)


def test_odd_sized_payloads_are_padded(provenance: Provenance, make_image: MakeImage) -> None:
    sizes = set()
    for n in range(2):  # one of two creator lengths makes the XMP payload odd
        p = dataclasses.replace(provenance, creator="c" * (n + 1))
        stamped = stamp_webp(make_image("WEBP"), p)
        sizes.add(len(_chunks(stamped)[-1][1]) % 2)
        assert len(stamped) % 2 == 0
        assert struct.unpack_from("<I", stamped, 4)[0] == len(stamped) - 8
        with Image.open(io.BytesIO(stamped)) as im:
            assert im.getexif()[ARTIST] == p.creator
    assert sizes == {0, 1}


def test_not_a_webp(provenance: Provenance, make_image: MakeImage) -> None:
    with pytest.raises(MetadataError, match="not a WebP"):
        stamp_webp(make_image("PNG"), provenance)


def test_truncated_webp(provenance: Provenance, make_image: MakeImage) -> None:
    with pytest.raises(MetadataError, match="truncated WebP"):
        stamp_webp(make_image("WEBP")[:-10], provenance)
