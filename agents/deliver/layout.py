"""Where a delivered asset goes: ``<tenant>/<campaign>/<request_id>.<ext>``, traversal-proof.

Names come from producers, so each is percent-encoded into one safe path component instead of
being trusted: ``../../etc`` becomes ``..%2F..%2Fetc``, never a path. Encoding (not stripping)
keeps distinct names distinct.

The request id's own dots are encoded too (``r.txt`` -> ``r%2Etxt``), so an asset's file name
has exactly one raw dot (before its extension) and a sidecar (``<asset>.json``) has two: no
request's asset can land on another request's sidecar.

Versions. The first bytes delivered for a request keep the plain name; different bytes for the
same request (a replay or re-drive that made a new asset) never replace them but go to a
*version*, named by their content: ``<request_id>.<sha256[:16]>.<ext>``. The name is a function
of the bytes, so redelivering the same bytes (after a crash, or a replay that made the same
asset) lands on the same name, and no two different assets of a request share one. A version's
name has two raw dots and its 16 hex digits are never an extension, so it cannot be a plain
asset's name (one dot) or a sidecar's (``<asset>.json``).
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
#: Hex digits of the content's SHA-256 in a version's name: 64 bits, so two assets of one
#: request never share a name by chance (a sink still refuses to replace different bytes).
VERSION_DIGITS = 16


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


def version_path(asset: PurePosixPath, sha256: str) -> PurePosixPath:
    """The name of the version of ``asset`` holding the bytes whose hex SHA-256 is ``sha256``.

    ``r.png`` -> ``r.<sha256[:16]>.png``, beside the first delivery.
    """
    digest = sha256.lower()
    if len(digest) < VERSION_DIGITS or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a hex SHA-256: {sha256!r}")
    stem, dot, ext = asset.name.rpartition(".")
    if not dot or not stem:
        raise ValueError(f"not an asset name: {asset.name!r}")
    return asset.with_name(f"{stem}.{digest[:VERSION_DIGITS]}.{ext}")


def names_version(location: str, sha256: str) -> bool:
    """Whether ``location`` (a completion's URI) is the version named for ``sha256``.

    Every sink puts the delivery name's last part in its location (file and object names,
    HTTP URLs built with ``{name}`` or ``{request_id}``); 16 hex digits after a dot are the
    version's mark, which a tenant or campaign name would hold only by a 2**-64 accident.
    """
    return f".{sha256.lower()[:VERSION_DIGITS]}" in location


def candidate_paths(
    asset: PurePosixPath,
    sha256: str,
    earlier_sha256: str | None = None,
    earlier_location: str | None = None,
) -> list[PurePosixPath]:
    """Where to try to put these bytes, in order; the sink refuses a name holding other bytes.

    ``earlier_*`` is the request's last delivered completion, when the line knows it. When it
    delivered other bytes, or these same bytes as a version, the plain name is someone else's
    and only the version is tried: a destination that cannot tell what it holds (an HTTP
    receiver that ignores ``If-None-Match``) must not be asked to replace it.
    """
    version = version_path(asset, sha256)
    if earlier_sha256 is not None and (
        earlier_sha256.lower() != sha256.lower()
        or (earlier_location is not None and names_version(earlier_location, sha256))
    ):
        return [version]
    return [asset, version]
