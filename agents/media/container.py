"""Container structure of PNG, JPEG and WebP files, checked before any decoder sees them.

Pillow is lenient: it takes the first PNG ``IHDR`` and ignores a second, stops at ``IEND``
without looking at what follows, and skips chunks it does not know. Another reader may then
show a different image from the same bytes (a second ``IHDR``), or carry data past the end
that nobody reviewed. So a file is refused unless its chunks/segments are laid out as the
format demands; only the container is read here (lengths, types, order, CRCs), never pixels,
so the cost is one pass over the bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from typing import Final

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_CRITICAL: Final = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
#: Chunks the PNG specification (and APNG's acTL) allows at most once.
_PNG_ONCE: Final = frozenset(
    {b"IHDR", b"PLTE", b"IEND", b"acTL", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP"}
    | {b"bKGD", b"hIST", b"tRNS", b"pHYs", b"tIME", b"eXIf", b"caBX"}
)
#: Chunks that must come before the first IDAT.
_PNG_BEFORE_IDAT: Final = frozenset(
    {b"PLTE", b"acTL", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP", b"bKGD"}
    | {b"hIST", b"tRNS", b"pHYs", b"sPLT"}
)
_MAX_PNG_CHUNK: Final = 2**31 - 1
#: Far more than any encoder writes (8-64 KiB IDAT chunks); bounds the per-chunk Python loop
#: against a file of millions of empty chunks.
MAX_PNG_CHUNKS: Final = 100_000

_JPEG_SOI: Final = b"\xff\xd8"
_JPEG_EOI: Final = 0xD9
_JPEG_SOS: Final = 0xDA
#: Markers without a length field: TEM and the restart markers RST0-7.
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
#: Start-of-frame markers (C4 DHT, C8 JPG and CC DAC share the range but are not frames).
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

_WEBP_BITSTREAMS: Final = frozenset({b"VP8 ", b"VP8L"})
_WEBP_ONCE: Final = frozenset({b"VP8X", b"ICCP", b"ANIM", b"EXIF", b"XMP ", b"ALPH"})
_WEBP_ANIMATION_FLAG: Final = 0x02


def png_problem(data: bytes) -> str | None:
    """Why ``data`` is not a well-formed PNG (None when it is): signature, CRCs and order.

    One IHDR (13 bytes) first; one IEND last, empty, with nothing after it; IDAT chunks
    present and consecutive; PLTE and the other pre-IDAT chunks before them; no chunk the
    specification allows once appearing twice; no unknown critical chunk (a decoder must
    refuse those, so readers would disagree about the image); an APNG has the frames its
    acTL announces.
    """
    if not data.startswith(PNG_SIGNATURE):
        return "not a PNG: the 8-byte signature is missing"
    seen: Counter[bytes] = Counter()
    announced = 0
    pos = len(PNG_SIGNATURE)
    last = b""
    idat_done = False
    while pos < len(data):
        if pos + 12 > len(data):
            return f"truncated PNG: incomplete chunk at byte {pos}"
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        name = ctype.decode("latin-1")
        if not ctype.isalpha() or not ctype.isascii():
            return f"malformed PNG: chunk type {name!r} at byte {pos} is not four letters"
        if length > _MAX_PNG_CHUNK or end > len(data):
            return f"truncated PNG: chunk {name} at byte {pos} runs past the end"
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return f"corrupt PNG: bad CRC in chunk {name} at byte {pos}"
        if seen.total() >= MAX_PNG_CHUNKS:
            return f"malformed PNG: more than {MAX_PNG_CHUNKS} chunks"
        if not seen and ctype != b"IHDR":
            return f"malformed PNG: the first chunk is {name}, not IHDR"
        if ctype == b"IHDR" and length != 13:
            return f"malformed PNG: IHDR is {length} bytes, not 13"
        if ctype in _PNG_ONCE and seen[ctype]:
            return f"malformed PNG: a second {name} chunk at byte {pos}"
        if ctype[0:1].isupper() and ctype not in _PNG_CRITICAL:
            return f"malformed PNG: unknown critical chunk {name} at byte {pos}"
        if ctype in _PNG_BEFORE_IDAT and seen[b"IDAT"]:
            return f"malformed PNG: {name} after the image data at byte {pos}"
        if ctype == b"IDAT":
            if idat_done:
                return f"malformed PNG: IDAT chunks are not consecutive (byte {pos})"
        elif last == b"IDAT":
            idat_done = True
        if ctype == b"acTL":
            if length != 8:
                return f"malformed PNG: acTL is {length} bytes, not 8"
            (announced,) = struct.unpack_from(">I", data, pos + 8)
        seen[ctype] += 1
        last = ctype
        if ctype == b"IEND":
            if length:
                return "malformed PNG: IEND is not empty"
            if end != len(data):
                return f"malformed PNG: {len(data) - end} bytes after IEND"
            break
        pos = end
    if not seen[b"IEND"]:
        return "truncated PNG: no IEND chunk"
    if not seen[b"IDAT"]:
        return "malformed PNG: no IDAT chunk"
    if seen[b"acTL"] and announced != seen[b"fcTL"]:
        # Readers that trust acTL and readers that count frames would show different images.
        return f"malformed PNG: acTL announces {announced} frames, {seen[b'fcTL']} follow"
    return None


def _jpeg_scan_end(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data starting at ``pos``."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        following = data[pos + 1]
        if following == 0x00 or following in _JPEG_STANDALONE or following == 0xFF:
            pos += 1 if following == 0xFF else 2
            continue
        return pos


def jpeg_problem(data: bytes) -> str | None:
    """Why ``data`` is not a well-formed JPEG: segments in bounds, one frame, EOI at the end."""
    if not data.startswith(_JPEG_SOI):
        return "not a JPEG: the SOI marker (FF D8) is missing"
    frames = 0
    scans = 0
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            return f"malformed JPEG: expected a marker at byte {pos}"
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= len(data):
            break
        marker = data[pos + 1]
        if marker == _JPEG_EOI:
            if not scans:
                return "malformed JPEG: EOI before any scan"
            if pos + 2 != len(data):
                return f"malformed JPEG: {len(data) - pos - 2} bytes after EOI"
            return None
        if marker in (0xD8, 0x00):
            return f"malformed JPEG: marker FF {marker:02X} at byte {pos}"
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return f"truncated JPEG: segment FF {marker:02X} at byte {pos} runs past the end"
        if marker in _JPEG_SOF:
            frames += 1
            if frames > 1:
                return f"malformed JPEG: a second frame header (FF {marker:02X}) at byte {pos}"
        if marker == _JPEG_SOS:
            if not frames:
                return "malformed JPEG: a scan before the frame header"
            scans += 1
            end = _jpeg_scan_end(data, end)
        pos = end
    return "truncated JPEG: no EOI marker at the end"


def webp_problem(data: bytes) -> str | None:
    """Why ``data`` is not a well-formed WebP: RIFF size exact, chunks in bounds and in place."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return "not a WebP: the RIFF/WEBP header is missing"
    (size,) = struct.unpack_from("<I", data, 4)
    if 8 + size > len(data):
        return f"truncated WebP: RIFF size {size} but {len(data) - 8} bytes follow"
    if 8 + size < len(data):
        return f"malformed WebP: {len(data) - 8 - size} bytes after the RIFF chunk"
    chunks: list[bytes] = []
    flags = 0
    pos = 12
    while pos < len(data):
        if pos + 8 > len(data):
            return f"truncated WebP: incomplete chunk header at byte {pos}"
        fourcc = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        stop = pos + 8 + length
        if stop > len(data):
            return f"truncated WebP: chunk {fourcc!r} at byte {pos} runs past the end"
        chunks.append(fourcc)
        if fourcc == b"VP8X" and len(chunks) == 1 and length >= 1:
            flags = data[pos + 8]
        pos = stop + (length & 1)
    if not chunks:
        return "malformed WebP: no chunks"
    counts = Counter(chunks)
    if chunks[0] in _WEBP_BITSTREAMS:
        if len(chunks) != 1:
            return "malformed WebP: a simple-format file holds one bitstream chunk and nothing else"
        return None
    if chunks[0] != b"VP8X":
        return f"malformed WebP: first chunk is {chunks[0]!r}, not VP8, VP8L or VP8X"
    for fourcc, count in counts.items():
        if fourcc in _WEBP_ONCE and count > 1:
            return f"malformed WebP: {count} {fourcc.decode('latin-1')!r} chunks"
    animated = bool(flags & _WEBP_ANIMATION_FLAG)
    bitstreams = sum(counts[fourcc] for fourcc in _WEBP_BITSTREAMS)
    if animated:
        if not counts[b"ANIM"] or not counts[b"ANMF"] or bitstreams:
            return "malformed WebP: an animation needs ANIM and ANMF chunks, no bare bitstream"
    elif counts[b"ANIM"] or counts[b"ANMF"] or bitstreams != 1:
        return "malformed WebP: a still image holds exactly one VP8/VP8L chunk and no frames"
    return None


def container_problem(data: bytes) -> str | None:
    """The structural problem of a PNG, JPEG or WebP file; None for those well formed and for
    other formats (the decoder refuses those)."""
    if data.startswith(PNG_SIGNATURE):
        return png_problem(data)
    if data.startswith(_JPEG_SOI):
        return jpeg_problem(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return webp_problem(data)
    return None


__all__ = ["PNG_SIGNATURE", "container_problem", "jpeg_problem", "png_problem", "webp_problem"]
