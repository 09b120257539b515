"""Provenance APP1 segments (EXIF and XMP) spliced into a JPEG; scan data is never touched.

Every metadata segment already in the file goes first: all APPn but JFIF (APP0), an ICC
profile (APP2 ``ICC_PROFILE``) and Adobe's colour transform (APP14), which decoding needs,
and every comment (COM). That removes foreign EXIF/XMP, IPTC (APP13), C2PA/JUMBF (APP11)
and free-text claims, so only our provenance remains; an EXIF Orientation is carried over.
"""

from __future__ import annotations

import struct

from agents.deliver.metadata.errors import MetadataError
from agents.deliver.metadata.exif import exif_tiff
from agents.deliver.metadata.fields import Provenance
from agents.deliver.metadata.xmp import xmp_packet
from agents.media.container import jpeg_problem

SOI = b"\xff\xd8"
APP0 = 0xE0
APP1 = 0xE1
SOS = 0xDA
APP2 = 0xE2
APP14 = 0xEE
COM = 0xFE
ICC_HEADER = b"ICC_PROFILE\x00"
EXIF_HEADER = b"Exif\x00\x00"
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXTENSION_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
MAX_PAYLOAD = 65533  # the 16-bit length field counts itself
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """(marker, whole segment) up to SOS, and the rest (SOS, scans, EOI) verbatim."""
    if not data.startswith(SOI):
        raise MetadataError("not a JPEG: the SOI marker (FF D8) is missing")
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise MetadataError(f"corrupt JPEG: expected a marker at byte {pos}")
        while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= len(data):
            break
        marker = data[pos + 1]
        if marker == SOS:
            return segments, data[pos:]
        if marker in _STANDALONE:
            segments.append((marker, data[pos : pos + 2]))
            pos += 2
            continue
        if pos + 4 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise MetadataError(
                f"truncated JPEG: segment FF {marker:02X} at byte {pos} runs past the end"
            )
        segments.append((marker, data[pos:end]))
        pos = end
    raise MetadataError("truncated JPEG: no start-of-scan (SOS) marker")


def _app1(payload: bytes, what: str) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise MetadataError(
            f"{what} is {len(payload)} bytes; a JPEG APP1 segment holds at most {MAX_PAYLOAD}"
        )
    return struct.pack(">BBH", 0xFF, APP1, len(payload) + 2) + payload


def _is_metadata(marker: int, segment: bytes) -> bool:
    """Comments and application segments, but those that change how the pixels decode."""
    if marker == COM:
        return True
    if not APP0 <= marker <= 0xEF or marker in (APP0, APP14):
        return False
    return not (marker == APP2 and segment[4:].startswith(ICC_HEADER))


def stamp_jpeg(data: bytes, p: Provenance) -> bytes:
    """The JPEG with fresh EXIF and XMP APP1 segments after SOI and any APP0 (JFIF).

    Every other metadata segment is dropped (see the module docstring); of an existing EXIF
    block only Orientation survives. Stamping twice equals stamping once. A malformed JPEG
    (two frame headers, data after EOI, ...) raises :class:`MetadataError`.
    """
    problem = jpeg_problem(data)
    if problem is not None:
        raise MetadataError(problem)
    segments, rest = _segments(data)
    old_exif = next(
        (
            s[4 + len(EXIF_HEADER) :]
            for m, s in segments
            if m == APP1 and s[4:].startswith(EXIF_HEADER)
        ),
        None,
    )
    kept = [(m, s) for m, s in segments if not _is_metadata(m, s)]
    at = 0
    while at < len(kept) and kept[at][0] == APP0:
        at += 1
    ours = (
        _app1(EXIF_HEADER + exif_tiff(p, old_exif), "EXIF"),
        _app1(XMP_HEADER + xmp_packet(p), "XMP packet"),
    )
    head = b"".join(s for _, s in kept[:at])
    tail = b"".join(s for _, s in kept[at:])
    return SOI + head + b"".join(ours) + tail + rest
