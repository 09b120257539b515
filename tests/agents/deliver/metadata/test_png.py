"""stamp_png: text chunks spliced after IHDR, pixels and image chunks untouched."""

from __future__ import annotations

import dataclasses
import io
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from types import ModuleType

import pytest
from PIL import Image, PngImagePlugin

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, MetadataError, Provenance, stamp_png
from agents.deliver.metadata.xmp import NS_IPTC_EXT

MakeImage = Callable[..., bytes]
Decode = Callable[[bytes], tuple[str, tuple[int, int], bytes]]


def _chunk_list(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


@pytest.fixture(params=["RGB", "RGBA", "L", "P"])
def png(request: pytest.FixtureRequest, make_image: MakeImage) -> bytes:
    mode: str = request.param
    return _palette_png() if mode == "P" else make_image("PNG", mode)


def _palette_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).convert("P").save(out, "PNG")
    return out.getvalue()


def test_pixels_identical(png: bytes, provenance: Provenance, decode: Decode) -> None:
    stamped = stamp_png(png, provenance)
    assert stamped != png
    assert decode(stamped) == decode(png)


def test_image_chunks_copied_byte_for_byte(png: bytes, provenance: Provenance) -> None:
    text_types = {b"tEXt", b"iTXt", b"zTXt"}
    before = [c for c in _chunk_list(png) if c[0] not in text_types]
    after = [c for c in _chunk_list(stamp_png(png, provenance)) if c[0] not in text_types]
    assert after == before


def test_text_chunks_right_after_ihdr_with_valid_crcs(png: bytes, provenance: Provenance) -> None:
    stamped = stamp_png(png, provenance)
    types = [t for t, _ in _chunk_list(stamped)]
    first_image = min(types.index(b"IDAT"), types.index(b"PLTE") if b"PLTE" in types else 10**9)
    assert types[0] == b"IHDR"
    assert set(types[1:first_image]) <= {b"tEXt", b"iTXt"}
    assert first_image > 5
    with Image.open(io.BytesIO(stamped)) as im:
        im.verify()  # Pillow checks every chunk CRC here
    pos = 8
    while pos < len(stamped):
        (length,) = struct.unpack_from(">I", stamped, pos)
        body = stamped[pos + 4 : pos + 8 + length]
        assert struct.unpack_from(">I", stamped, pos + 8 + length)[0] == zlib.crc32(body)
        pos += 12 + length


def test_pillow_reads_text(png: bytes, provenance: Provenance) -> None:
    with Image.open(io.BytesIO(stamp_png(png, provenance))) as im:
        text = dict(im.text)  # type: ignore[attr-defined]
    assert text["Copyright"] == provenance.copyright
    assert text["Author"] == provenance.creator
    assert text["Description"] == provenance.description()
    assert text["assetline:request_id"] == "req-42"
    assert text["assetline:attempt"] == "2"
    assert text["assetline:prompt_sha256"] == "a" * 64
    assert text["assetline:metadata"] == '{"channel": "social & <web>", "locale": "de-DE"}'


def test_xmp_digital_source_type_via_pillow(png: bytes, provenance: Provenance) -> None:
    with Image.open(io.BytesIO(stamp_png(png, provenance))) as im:
        xmp = im.info["XML:com.adobe.xmp"]
    root = ET.fromstring(xmp)
    assert root.findtext(f".//{{{NS_IPTC_EXT}}}DigitalSourceType") == DIGITAL_SOURCE_TYPE


def test_xmp_via_pyexiv2(png: bytes, provenance: Provenance, pyexiv2: ModuleType) -> None:
    with pyexiv2.ImageData(stamp_png(png, provenance)) as img:
        xmp = img.read_xmp()
    assert xmp["Xmp.iptcExt.DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert xmp["Xmp.dc.rights"] == {'lang="x-default"': provenance.copyright}
    assert xmp["Xmp.dc.creator"] == [provenance.creator]
    assert xmp["Xmp.assetline.request_id"] == "req-42"


def test_idempotent(png: bytes, provenance: Provenance) -> None:
    once = stamp_png(png, provenance)
    assert stamp_png(once, provenance) == once


def test_restamp_replaces_every_value(
    png: bytes, provenance: Provenance, other_provenance: Provenance
) -> None:
    restamped = stamp_png(stamp_png(png, provenance), other_provenance)
    assert restamped == stamp_png(png, other_provenance)
    with Image.open(io.BytesIO(restamped)) as im:
        text = dict(im.text)  # type: ignore[attr-defined]
    assert text["Copyright"] == "(c) Other"
    assert "assetline:metadata" not in text


def test_foreign_text_chunks_dropped(make_image: MakeImage, provenance: Provenance) -> None:
    """Any foreign text may be a claim ('Comment: not AI'): only ours remains (issue 12)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "some-tool")
    info.add_text("Author", "old author")
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG", pnginfo=info)
    with Image.open(io.BytesIO(stamp_png(out.getvalue(), provenance))) as im:
        text = dict(im.text)  # type: ignore[attr-defined]
    assert "Software" not in text
    assert text["Author"] == provenance.creator


def test_non_latin1_value_goes_to_itxt(make_image: MakeImage, provenance: Provenance) -> None:
    p = dataclasses.replace(provenance, creator="山田 ✓")
    stamped = stamp_png(make_image("PNG"), p)
    author = [t for t, c in _chunk_list(stamped) if c.startswith(b"Author\x00")]
    assert author == [b"iTXt"]
    with Image.open(io.BytesIO(stamped)) as im:
        assert im.text["Author"] == "山田 ✓"  # type: ignore[attr-defined]


def test_not_a_png(provenance: Provenance, make_image: MakeImage) -> None:
    with pytest.raises(MetadataError, match="not a PNG"):
        stamp_png(make_image("JPEG"), provenance)
    with pytest.raises(MetadataError, match="not a PNG"):
        stamp_png(b"", provenance)


@pytest.mark.parametrize("cut", [10, 20, 40, -5, -12])
def test_truncated_png(provenance: Provenance, make_image: MakeImage, cut: int) -> None:
    data = make_image("PNG")
    with pytest.raises(MetadataError, match="truncated PNG"):
        stamp_png(data[:cut], provenance)


def test_bad_crc(provenance: Provenance, make_image: MakeImage) -> None:
    data = bytearray(make_image("PNG"))
    data[45] ^= 0xFF  # inside the first IDAT's data
    with pytest.raises(MetadataError, match="bad CRC"):
        stamp_png(bytes(data), provenance)
