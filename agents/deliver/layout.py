"""Where a delivered asset goes: ``<tenant>/<campaign>/<request_id>.<ext>``, traversal-proof.

Names come from producers, so each is percent-encoded into one safe path component instead of
being trusted: ``../../etc`` becomes ``..%2F..%2Fetc``, never a path. Encoding (not stripping)
keeps distinct names distinct.

The request id's own dots are encoded too (``r.txt`` -> ``r%2Etxt``), so an asset's file name
has exactly one raw dot (before its extension) and a sidecar (``<asset>.json``) has two: no
request's asset can land on another request's sidecar.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import quote

from schemas.errors import AssetlineError

EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "text/plain": "txt",
    "application/json": "json",
    "text/x-python": "py",
    "application/javascript": "js",
    "text/javascript": "js",
}
MAX_COMPONENT_BYTES = 200


class UnsafeNameError(AssetlineError, ValueError):
    """A name cannot be made into a safe path component."""

    code = "deliver.unsafe_name"


def safe_component(name: str, *, keep_dots: bool = True) -> str:
    """One path component that cannot escape its parent folder."""
    encoded = quote(name, safe="-_.@+=")
    if not keep_dots:
        encoded = encoded.replace(".", "%2E")
    if not encoded:
        raise UnsafeNameError("an empty name cannot be a path component")
    if encoded.startswith("."):  # no '.', '..' or hidden files
        encoded = "%2E" + encoded[1:]
    if len(encoded.encode()) > MAX_COMPONENT_BYTES:
        raise UnsafeNameError(f"name is too long for a path component ({len(encoded)} chars)")
    return encoded


def extension_for(media_type: str) -> str:
    base = media_type.split(";", 1)[0].strip().lower()
    return EXTENSIONS.get(base, "bin")


def delivery_path(tenant: str, campaign_id: str, request_id: str, media_type: str) -> PurePosixPath:
    """The relative path of an asset inside a delivery root."""
    filename = f"{safe_component(request_id, keep_dots=False)}.{extension_for(media_type)}"
    return PurePosixPath(safe_component(tenant), safe_component(campaign_id), filename)


def sidecar_path(asset: PurePosixPath) -> PurePosixPath:
    """Where an asset's JSON provenance sidecar goes: beside it, never on another asset's path."""
    return asset.with_name(asset.name + ".json")
