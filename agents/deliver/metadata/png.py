"""Provenance text chunks spliced into a PNG; the image data chunks are copied byte for byte.

Every metadata chunk already in the file goes first: text of any keyword (a lower-case
``copyright`` or a ``Comment: not AI`` would otherwise stand beside ours), ``eXIf`` (whose
Copyright would contradict ours), ``caBX`` (a C2PA manifest for bytes that are about to
change) and ``dSIG``. Only an EXIF Orientation survives, in a fresh ``eXIf`` of our own.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator

from agents.deliver.metadata.errors import MetadataError
from agents.deliver.metadata.exif import exif_tiff, orientation
from agents.deliver.metadata.fields import Provenance
from agents.deliver.metadata.xmp import xml_safe, xmp_packet
from agents.media.container import png_problem

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = "XML:com.adobe.xmp"
#: Chunks that carry metadata or provenance claims; all are replaced by ours.
METADATA_TYPES = frozenset({b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"caBX", b"dSIG"})
_OURS_PREFIX = "assetline:"
_MAX_CHUNK = 2**31 - 1


def _chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk, each checked for length, CRC and order."""
    if not data.startswith(SIGNATURE):
        raise MetadataError("not a PNG: the 8-byte PNG signature is missing")
    pos = len(SIGNATURE)
    first = True
    while pos < len(data):
        if pos + 8 > len(data):
            raise MetadataError(f"truncated PNG: incomplete chunk header at byte {pos}")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > _MAX_CHUNK or end > len(data):
            raise MetadataError(f"truncated PNG: chunk {ctype!r} at byte {pos} runs past the end")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            raise MetadataError(f"corrupt PNG: bad CRC in chunk {ctype!r} at byte {pos}")
        if first and ctype != b"IHDR":
            raise MetadataError("corrupt PNG: the first chunk is not IHDR")
        first = False
        yield ctype, pos, end
        if ctype == b"IEND":
            return
        pos = end
    raise MetadataError("truncated PNG: no IEND chunk")


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    if len(payload) > _MAX_CHUNK:
        raise MetadataError(f"PNG {ctype!r} chunk too large: {len(payload)} bytes")
    body = ctype + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def text_chunk(keyword: str, value: str) -> bytes:
    """tEXt when Latin-1 can hold the value (every reader knows it), else uncompressed iTXt."""
    value = xml_safe(value)
    key = keyword.encode("latin-1")
    try:
        return _chunk(b"tEXt", key + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return itxt_chunk(keyword, value)


def itxt_chunk(keyword: str, value: str) -> bytes:
    """Uncompressed iTXt: keyword, no compression, empty language and translated keyword."""
    payload = keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + xml_safe(value).encode()
    return _chunk(b"iTXt", payload)


def provenance_chunks(p: Provenance) -> bytes:
    """Every chunk we write, in a fixed order: XMP first, then the plain text fields."""
    out = [itxt_chunk(XMP_KEYWORD, xmp_packet(p).decode("utf-8"))]
    if p.copyright is not None:
        out.append(text_chunk("Copyright", p.copyright))
    if p.creator is not None:
        out.append(text_chunk("Author", p.creator))
    out.append(text_chunk("Description", p.description()))
    for name, value in p.assetline_fields():
        out.append(text_chunk(_OURS_PREFIX + name, value))
    if p.metadata:
        meta = json.dumps(dict(p.metadata), sort_keys=True, ensure_ascii=False)
        out.append(text_chunk(_OURS_PREFIX + "metadata", meta))
    return b"".join(out)


def stamp_png(data: bytes, p: Provenance) -> bytes:
    """The PNG with provenance chunks right after IHDR, replacing every metadata chunk.

    So stamping twice equals stamping once, and neither a re-stamp nor the file's history leaves
    a stale or foreign value behind. A malformed PNG (two IHDR, data after IEND, ...; see
    :func:`.png_problem`) raises :class:`MetadataError`: readers would disagree on it.
    """
    problem = png_problem(data)
    if problem is not None:
        raise MetadataError(problem)
    kept: list[bytes] = []
    foreign_exif: bytes | None = None
    for ctype, start, end in _chunks(data):
        if ctype == b"eXIf":
            foreign_exif = data[start + 8 : end - 4]
        if ctype not in METADATA_TYPES:
            kept.append(data[start:end])
        if ctype == b"IHDR":
            kept.append(provenance_chunks(p))
    if orientation(foreign_exif) not in (None, 1):  # how pixels are shown is no claim: kept
        kept.insert(2, _chunk(b"eXIf", exif_tiff(p, foreign_exif)))
    return SIGNATURE + b"".join(kept)
