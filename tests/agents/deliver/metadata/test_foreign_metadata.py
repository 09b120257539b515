"""Issue 12 item 12: stamping leaves only our provenance, whatever the file carried before.

Each hostile sample carries foreign claims in every carrier its format has (another copyright,
"not AI", a stale C2PA manifest); after stamping, independent readers (pyexiv2's exiv2 and
Pillow) and the raw bytes must show ours alone. Malformed containers are refused.
"""

from __future__ import annotations

import io
import struct
import zlib
from types import ModuleType

import pytest
from PIL import Image, PngImagePlugin

from agents.deliver.metadata import MetadataError, Provenance, stamp_jpeg, stamp_png, stamp_webp
from agents.deliver.metadata.exif import ARTIST, COPYRIGHT, IMAGE_DESCRIPTION, ORIENTATION

EVIL = "EvilCorp"
NOT_AI = "not AI"
USER_COMMENT = 0x9286
SOFTWARE = 0x0131


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    body = ctype + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def insert_after_ihdr(data: bytes, *chunks: bytes) -> bytes:
    at = 8 + 25  # signature + IHDR (13-byte payload)
    return data[:at] + b"".join(chunks) + data[at:]


def foreign_exif(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[COPYRIGHT] = f"(c) {EVIL}"
    exif[ARTIST] = EVIL
    exif[IMAGE_DESCRIPTION] = f"{NOT_AI}: shot on film"
    exif[SOFTWARE] = f"{EVIL} camera"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif.tobytes()  # with the 'Exif\0\0' header


def foreign_xmp() -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{EVIL}</rdf:li></rdf:Alt></dc:rights>'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{NOT_AI}</rdf:li></rdf:Alt>'
        "</dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


#: A stand-in for a stale C2PA manifest: a JUMBF superbox labelled c2pa, naming EvilCorp.
STALE_C2PA = b"\x00\x00\x00\x30jumb\x00\x00\x00\x18jumdc2pa" + f" {EVIL} {NOT_AI} ".encode()


def assert_only_ours(stamped: bytes, p: Provenance, pyexiv2: ModuleType) -> None:
    """Neither the raw bytes nor exiv2 show a foreign value; exiv2 sees ours."""
    assert EVIL.encode() not in stamped
    assert NOT_AI.encode() not in stamped
    assert b"c2pa" not in stamped
    with pyexiv2.ImageData(stamped) as image:
        exif = image.read_exif()
        xmp = image.read_xmp()
        iptc = image.read_iptc()
        comment = image.read_comment()
    everything = repr((exif, xmp, iptc, comment))
    assert EVIL not in everything
    assert NOT_AI not in everything
    assert iptc == {}
    assert comment in ("", p.description())  # exiv2 shows a PNG's Description as its comment
    assert xmp["Xmp.dc.rights"] == {'lang="x-default"': p.copyright}
    assert xmp["Xmp.assetline.request_id"] == p.request_id
    if exif:  # PNG carries EXIF only to keep an Orientation
        assert exif["Exif.Image.Copyright"] == p.copyright


# --- PNG ---------------------------------------------------------------------------------------


def hostile_png(orientation: int | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("copyright", f"(c) {EVIL}")  # lower-case: missed before
    info.add_text("COPYRIGHT", EVIL)
    info.add_text("Comment", NOT_AI, zip=True)  # zTXt
    info.add_itxt("Copyright", EVIL, lang="en", tkey="Urheberrecht")
    info.add_itxt("XML:com.adobe.xmp", foreign_xmp().decode())
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 120, 200)).save(out, "PNG", pnginfo=info)
    exif = png_chunk(b"eXIf", foreign_exif(orientation).removeprefix(b"Exif\x00\x00"))
    return insert_after_ihdr(
        out.getvalue(), exif, png_chunk(b"caBX", STALE_C2PA), png_chunk(b"dSIG", EVIL.encode())
    )


def test_png_foreign_carriers_are_all_stripped(provenance: Provenance, pyexiv2: ModuleType) -> None:
    data = hostile_png()
    with Image.open(io.BytesIO(data)) as before:  # the sample really carries the claims
        assert before.text["copyright"] == f"(c) {EVIL}"  # type: ignore[attr-defined]
        assert before.getexif()[COPYRIGHT] == f"(c) {EVIL}"
    stamped = stamp_png(data, provenance)
    assert_only_ours(stamped, provenance, pyexiv2)
    types = [ctype for ctype, _ in png_chunks(stamped)]
    assert b"eXIf" not in types
    assert b"caBX" not in types
    assert b"dSIG" not in types
    assert b"zTXt" not in types
    with Image.open(io.BytesIO(stamped)) as after:
        text = dict(after.text)  # type: ignore[attr-defined]
        assert after.tobytes() == Image.open(io.BytesIO(data)).tobytes()
    assert {key.lower() for key in text} == {
        "xml:com.adobe.xmp",
        "copyright",
        "author",
        "description",
        *(key.lower() for key in text if key.startswith("assetline:")),
    }
    assert text["Copyright"] == provenance.copyright
    assert stamp_png(stamped, provenance) == stamped


def test_png_orientation_survives_in_our_own_exif(
    provenance: Provenance, pyexiv2: ModuleType
) -> None:
    stamped = stamp_png(hostile_png(orientation=6), provenance)
    assert_only_ours(stamped, provenance, pyexiv2)
    with Image.open(io.BytesIO(stamped)) as image:
        exif = image.getexif()
    assert exif[ORIENTATION] == 6
    assert USER_COMMENT not in exif
    assert SOFTWARE not in exif
    assert stamp_png(stamped, provenance) == stamped


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda d: insert_after_ihdr(d, d[8:33]), "a second IHDR"),
        (lambda d: d + png_chunk(b"tEXt", b"Comment\x00" + NOT_AI.encode()), "after IEND"),
        (lambda d: d + b"\x00" * 7, "after IEND"),
        (lambda d: insert_after_ihdr(d, png_chunk(b"EVIL", b"")), "unknown critical chunk"),
    ],
)
def test_png_malformed_structure_is_refused(
    provenance: Provenance, mangle: object, problem: str
) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    assert callable(mangle)
    with pytest.raises(MetadataError, match=problem):
        stamp_png(mangle(out.getvalue()), provenance)


# --- JPEG --------------------------------------------------------------------------------------


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_markers(data: bytes) -> list[int]:
    markers = []
    pos = 2
    while data[pos + 1] != 0xDA:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        markers.append(marker)
        pos += 2 + length
    return markers


def hostile_jpeg(pyexiv2: ModuleType, orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 120, 200)).save(
        out, "JPEG", exif=foreign_exif(orientation), comment=f"{EVIL}: {NOT_AI}"
    )
    with pyexiv2.ImageData(out.getvalue()) as image:
        image.modify_xmp({"Xmp.dc.rights": EVIL, "Xmp.dc.description": NOT_AI})
        image.modify_iptc({"Iptc.Application2.Copyright": EVIL})  # APP13
        data: bytes = image.get_bytes()
    app11 = jpeg_segment(0xEB, b"JP\x00\x00\x00\x00\x00\x01" + STALE_C2PA)  # C2PA JUMBF
    ducky = jpeg_segment(0xEC, b"Ducky\x00" + EVIL.encode())  # APP12 copyright string
    return data[:2] + app11 + ducky + data[2:]


def test_jpeg_foreign_carriers_are_all_stripped(
    provenance: Provenance, pyexiv2: ModuleType
) -> None:
    data = hostile_jpeg(pyexiv2)
    with pyexiv2.ImageData(data) as image:  # the sample really carries the claims
        assert image.read_comment() == f"{EVIL}: {NOT_AI}"
        assert image.read_iptc()["Iptc.Application2.Copyright"] == EVIL
        assert image.read_exif()["Exif.Image.Copyright"] == f"(c) {EVIL}"
    assert {0xE1, 0xEB, 0xEC, 0xED, 0xFE} <= set(jpeg_markers(data))

    stamped = stamp_jpeg(data, provenance)
    assert_only_ours(stamped, provenance, pyexiv2)
    assert [m for m in jpeg_markers(stamped) if m >= 0xE0] == [0xE0, 0xE1, 0xE1]
    with Image.open(io.BytesIO(stamped)) as image:
        assert "comment" not in image.info
    assert stamp_jpeg(stamped, provenance) == stamped


def test_jpeg_keeps_orientation_and_icc_only(provenance: Provenance, pyexiv2: ModuleType) -> None:
    out = io.BytesIO()
    icc = b"\x00" * 128 + b"acsp" + b"\x00" * 64  # the profile's bytes only need to survive
    Image.new("RGB", (8, 8)).save(out, "JPEG", exif=foreign_exif(3), icc_profile=icc)
    stamped = stamp_jpeg(out.getvalue(), provenance)
    with Image.open(io.BytesIO(stamped)) as image:
        assert image.info["icc_profile"] == icc
        exif = image.getexif()
    assert exif[ORIENTATION] == 3
    assert SOFTWARE not in exif
    assert EVIL.encode() not in stamped


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda d: d + b"PK\x03\x04 hidden zip", "after EOI"),
        (
            lambda d: d[:2] + jpeg_segment(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00") + d[2:],
            "second frame header",
        ),
    ],
)
def test_jpeg_malformed_structure_is_refused(
    provenance: Provenance, mangle: object, problem: str
) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    assert callable(mangle)
    with pytest.raises(MetadataError, match=problem):
        stamp_jpeg(mangle(out.getvalue()), provenance)


# --- WebP --------------------------------------------------------------------------------------


def riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return (
        fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")
    )


def with_riff_chunk(data: bytes, chunk: bytes) -> bytes:
    body = data[12:] + chunk
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def hostile_webp() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (24, 16), (10, 120, 200, 255)).save(
        out, "WEBP", exif=foreign_exif(), xmp=foreign_xmp()
    )
    return with_riff_chunk(out.getvalue(), riff_chunk(b"C2PA", STALE_C2PA))


def test_webp_foreign_carriers_are_all_stripped(
    provenance: Provenance, pyexiv2: ModuleType
) -> None:
    data = hostile_webp()
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif()[COPYRIGHT] == f"(c) {EVIL}"
    stamped = stamp_webp(data, provenance)
    assert_only_ours(stamped, provenance, pyexiv2)
    assert stamp_webp(stamped, provenance) == stamped


def test_webp_trailing_data_is_refused(provenance: Provenance) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "WEBP")
    with pytest.raises(MetadataError, match="after the RIFF chunk"):
        stamp_webp(out.getvalue() + b"EXIF" + EVIL.encode(), provenance)
