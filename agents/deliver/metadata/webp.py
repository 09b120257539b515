"""Provenance EXIF and XMP chunks added to a WebP's RIFF container; the bitstream is copied.

Existing EXIF, XMP and C2PA chunks are dropped first (only an EXIF Orientation carries
over), so no foreign claim stands beside ours.
"""

from __future__ import annotations

import struct

from agents.deliver.metadata.errors import MetadataError
from agents.deliver.metadata.exif import exif_tiff
from agents.deliver.metadata.fields import Provenance
from agents.deliver.metadata.xmp import xmp_packet
from agents.media.container import webp_problem

FLAG_ICC = 0x20
FLAG_ALPHA = 0x10
FLAG_EXIF = 0x08
FLAG_XMP = 0x04
FLAG_ANIMATION = 0x02
#: Chunks that carry metadata or provenance claims; all are replaced by ours.
METADATA_CHUNKS = frozenset({b"EXIF", b"XMP ", b"C2PA"})
_MAX_RIFF = 2**32 - 2


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, payload) of every chunk, checked against the RIFF size."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MetadataError("not a WebP: the RIFF/WEBP header is missing")
    (size,) = struct.unpack_from("<I", data, 4)
    end = 8 + size
    if size < 4 or end > len(data):
        raise MetadataError(f"truncated WebP: RIFF size {size} but {len(data) - 8} bytes follow")
    chunks: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos < end:
        if pos + 8 > end:
            raise MetadataError(f"truncated WebP: incomplete chunk header at byte {pos}")
        fourcc = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        stop = pos + 8 + length
        if stop > end:
            raise MetadataError(f"truncated WebP: chunk {fourcc!r} at byte {pos} runs past the end")
        chunks.append((fourcc, data[pos + 8 : stop]))
        pos = stop + (length & 1)
    if not chunks:
        raise MetadataError("not a WebP: no chunks")
    return chunks


def _simple_header(fourcc: bytes, payload: bytes) -> tuple[int, int, int]:
    """(flags, width, height) of a simple-format image, read from the bitstream header."""
    if fourcc == b"VP8 ":
        if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
            raise MetadataError("corrupt WebP: VP8 key frame start code missing")
        width, height = struct.unpack_from("<HH", payload, 6)
        return 0, width & 0x3FFF, height & 0x3FFF
    if fourcc == b"VP8L":
        if len(payload) < 5 or payload[0] != 0x2F:
            raise MetadataError("corrupt WebP: VP8L signature missing")
        (bits,) = struct.unpack_from("<I", payload, 1)
        flags = FLAG_ALPHA if bits >> 28 & 1 else 0
        return flags, (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
    raise MetadataError(f"not a WebP: first chunk is {fourcc!r}, not VP8, VP8L or VP8X")


def _vp8x(chunks: list[tuple[bytes, bytes]]) -> bytes:
    fourcc, payload = chunks[0]
    if fourcc == b"VP8X":
        if len(payload) < 10:
            raise MetadataError("corrupt WebP: VP8X chunk shorter than 10 bytes")
        return bytes([payload[0] | FLAG_EXIF | FLAG_XMP]) + payload[1:10]
    flags, width, height = _simple_header(fourcc, payload)
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes([flags | FLAG_EXIF | FLAG_XMP]) + b"\x00\x00\x00" + canvas


def _chunk(fourcc: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) & 1 else b""
    return fourcc + struct.pack("<I", len(payload)) + payload + pad


def stamp_webp(data: bytes, p: Provenance) -> bytes:
    """The WebP in extended format with fresh EXIF and XMP chunks at the end.

    A simple (VP8/VP8L-only) file gets a VP8X header; an extended one keeps its flags (alpha,
    ICC, animation) and only gains the EXIF and XMP bits. A malformed WebP (RIFF size wrong,
    chunks repeated or misplaced) raises :class:`MetadataError`.
    """
    problem = webp_problem(data)
    if problem is not None:
        raise MetadataError(problem)
    chunks = _chunks(data)
    old_exif = next((c for f, c in chunks if f == b"EXIF"), None)
    body = [_chunk(b"VP8X", _vp8x(chunks))]
    body += [_chunk(f, c) for f, c in chunks if f != b"VP8X" and f not in METADATA_CHUNKS]
    body.append(_chunk(b"EXIF", exif_tiff(p, old_exif)))
    body.append(_chunk(b"XMP ", xmp_packet(p)))
    payload = b"WEBP" + b"".join(body)
    if len(payload) > _MAX_RIFF:
        raise MetadataError(f"WebP too large for RIFF: {len(payload)} bytes")
    return b"RIFF" + struct.pack("<I", len(payload)) + payload
