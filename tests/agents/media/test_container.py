"""Container structure (issue 12 item 12): malformed PNG/JPEG/WebP files are refused with a code.

Pillow decodes every hostile PNG below without complaint (it reads the first IHDR and stops at
IEND), which is why the structure is checked on its own.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from agents.media.container import (
    container_problem,
    jpeg_problem,
    png_problem,
    webp_problem,
)
from agents.validate.checks import default_checks
from agents.validate.checks._base import Subject
from agents.validate.checks.image import ImageContainer, ImageDecodes, ImageProber
from schemas.records import AssetKind, Constraints, GenerationRequest


def chunk(ctype: bytes, payload: bytes) -> bytes:
    body = ctype + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def encode(fmt: str, mode: str = "RGB", **params: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (16, 12), (30, 60, 90) if mode == "RGB" else 1).save(out, fmt, **params)
    return out.getvalue()


PNG = encode("PNG")
IHDR = PNG[8:33]
IEND = chunk(b"IEND", b"")
SIGNATURE = PNG[:8]


def chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def idat_of(data: bytes) -> bytes:
    pos = 8
    while True:
        (length,) = struct.unpack_from(">I", data, pos)
        if data[pos + 4 : pos + 8] == b"IDAT":
            return data[pos : pos + 12 + length]
        pos += 12 + length


def split_idat(data: bytes) -> tuple[bytes, bytes]:
    """The first IDAT's payload as two IDAT chunks."""
    whole = idat_of(data)
    payload = whole[8:-4]
    return chunk(b"IDAT", payload[:5]), chunk(b"IDAT", payload[5:])


OTHER_IHDR = chunk(b"IHDR", struct.pack(">IIBBBBB", 4000, 3000, 8, 2, 0, 0, 0))
IDAT = idat_of(PNG)
FIRST, SECOND = split_idat(PNG)

MALFORMED_PNGS: dict[str, tuple[bytes, str]] = {
    "two IHDR": (SIGNATURE + IHDR + IHDR + IDAT + IEND, "a second IHDR"),
    "two IHDR, different sizes": (SIGNATURE + IHDR + OTHER_IHDR + IDAT + IEND, "a second IHDR"),
    "chunk after IEND": (PNG + chunk(b"tEXt", b"Comment\x00hidden"), "after IEND"),
    "bytes after IEND": (PNG + b"\x00\x01", "after IEND"),
    "two IEND": (PNG + IEND, "after IEND"),
    "IHDR not first": (SIGNATURE + chunk(b"gAMA", b"\x00\x00\xb1\x8f") + PNG[8:], "not IHDR"),
    "IHDR too long": (SIGNATURE + chunk(b"IHDR", IHDR[8:-4] + b"\x00") + IDAT + IEND, "not 13"),
    "PLTE after IDAT": (
        SIGNATURE + IHDR + IDAT + chunk(b"PLTE", b"\x00\x00\x00") + IEND,
        "PLTE after the image data",
    ),
    "IDAT split by a chunk": (
        SIGNATURE + IHDR + FIRST + chunk(b"tEXt", b"a\x00b") + SECOND + IEND,
        "not consecutive",
    ),
    "unknown critical chunk": (SIGNATURE + IHDR + chunk(b"EVIL", b"") + IDAT + IEND, "critical"),
    "no IDAT": (SIGNATURE + IHDR + IEND, "no IDAT"),
    "two eXIf": (
        SIGNATURE + IHDR + chunk(b"eXIf", b"MM\x00*") + chunk(b"eXIf", b"MM\x00*") + IDAT + IEND,
        "a second eXIf",
    ),
    "chunk type not letters": (SIGNATURE + IHDR + chunk(b"a1b2", b"") + IDAT + IEND, "letters"),
    "bad CRC": (SIGNATURE + IHDR[:-1] + bytes([IHDR[-1] ^ 1]) + IDAT + IEND, "bad CRC"),
    "no IEND": (SIGNATURE + IHDR + IDAT, "no IEND"),
}


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 12), color) for color in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:])
    return out.getvalue()


WELL_FORMED = {
    "png rgb": PNG,
    "png palette": encode("PNG", "P"),
    "png rgba": encode("PNG", "RGBA"),
    "png interlaced split IDAT": SIGNATURE + IHDR + FIRST + SECOND + IEND,
    "apng": animated("PNG"),
    "jpeg": encode("JPEG"),
    "jpeg progressive": encode("JPEG", progressive=True),
    "jpeg with restart markers": encode("JPEG", restart_marker_blocks=1),
    "jpeg grey": encode("JPEG", "L"),
    "webp lossy": encode("WEBP"),
    "webp lossless": encode("WEBP", lossless=True),
    "webp alpha": encode("WEBP", "RGBA"),
    "webp animated": animated("WEBP"),
    "webp with exif": encode("WEBP", exif=Image.Exif().tobytes()),
}


def test_apng_announcing_fewer_frames_than_it_holds_is_refused() -> None:
    """Pillow trusts acTL (one frame: a still image); a counting reader shows all three."""
    data = animated("PNG")
    at = data.index(b"acTL")
    payload = struct.pack(">II", 1, 0)
    lying = data[: at - 4] + chunk(b"acTL", payload) + data[at + 4 + 8 + 4 :]
    with Image.open(io.BytesIO(lying)) as image:
        assert getattr(image, "n_frames", 1) == 1
    found = png_problem(lying)
    assert found is not None
    assert "acTL announces 1 frames, 3 follow" in found


@pytest.mark.parametrize("name", list(WELL_FORMED))
def test_well_formed_files_pass(name: str) -> None:
    assert container_problem(WELL_FORMED[name]) is None


@pytest.mark.parametrize("name", list(MALFORMED_PNGS))
def test_malformed_png_is_named(name: str) -> None:
    data, problem = MALFORMED_PNGS[name]
    found = png_problem(data)
    assert found is not None
    assert problem in found


def test_pillow_alone_accepts_two_ihdr_chunks() -> None:
    """Why the check exists: Pillow decodes a file with two IHDR chunks without an error."""
    data, _ = MALFORMED_PNGS["two IHDR"]
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size == (16, 12)
    assert chunk_types(data).count(b"IHDR") == 2


def image_subject(data: bytes) -> Subject:
    request = GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=AssetKind.IMAGE,
        prompt_template="a picture",
        constraints=Constraints(),
    )
    return Subject(request=request, data=data, media_type="image/png")


@pytest.mark.parametrize(
    "name", ["two IHDR", "chunk after IEND", "IDAT split by a chunk", "unknown critical chunk"]
)
def test_image_container_check_refuses_with_its_code(name: str) -> None:
    data, problem = MALFORMED_PNGS[name]
    prober = ImageProber()
    container = ImageContainer(prober)(image_subject(data))
    assert container.code == "image.container"
    assert not container.passed
    assert container.repairable
    assert problem in container.message
    decodes = ImageDecodes(prober)(image_subject(data))
    assert not decodes.passed  # a decoding problem, else "see image.container"
    assert prober(data).image is None  # never handed to the pixel checks


def test_default_suite_fails_two_ihdr_under_image_container() -> None:
    data, _ = MALFORMED_PNGS["two IHDR"]
    failed = {
        r.code
        for c in default_checks()
        if AssetKind.IMAGE in c.kinds
        for r in [c(image_subject(data))]
        if not r.passed
    }
    assert "image.container" in failed


@pytest.mark.parametrize(
    ("check", "data", "problem"),
    [
        (jpeg_problem, encode("JPEG") + b"trailing", "bytes after EOI"),
        (jpeg_problem, encode("JPEG")[:-2], "no EOI"),
        (
            jpeg_problem,
            encode("JPEG")[:2]
            + b"\xff\xc0\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00"
            + encode("JPEG")[2:],
            "second frame header",
        ),
        (jpeg_problem, b"\xff\xd8\xff\xd9", "EOI before any scan"),
        (webp_problem, encode("WEBP") + b"\x00\x00", "bytes after the RIFF chunk"),
        (webp_problem, encode("WEBP")[:-4], "truncated WebP"),
    ],
)
def test_malformed_jpeg_and_webp_are_named(
    check: Callable[[bytes], str | None], data: bytes, problem: str
) -> None:
    found = check(data)
    assert found is not None
    assert problem in found


def test_webp_with_two_bitstreams_is_refused() -> None:
    simple = encode("WEBP")
    bitstream = simple[12:]
    body = bitstream + bitstream
    doubled = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
    found = webp_problem(doubled)
    assert found is not None
    assert "one bitstream chunk" in found


def test_millions_of_empty_chunks_are_refused_quickly() -> None:
    data = SIGNATURE + IHDR + chunk(b"zzZz", b"") * 2_000_000 + IDAT + IEND
    started = time.perf_counter()
    found = png_problem(data)
    assert found is not None
    assert "more than 100000 chunks" in found
    assert time.perf_counter() - started < 5  # stops at the limit, not after 2 million


def test_the_scan_is_linear_on_a_large_file() -> None:
    chunks = b"".join(chunk(b"tEXt", b"k\x00" + b"v" * 10) for _ in range(50_000))
    data = SIGNATURE + IHDR + chunks + IDAT + IEND
    assert png_problem(data) is None
