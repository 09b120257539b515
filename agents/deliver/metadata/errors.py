"""The one exception of the metadata package, so callers can tell bad files from bugs."""

from __future__ import annotations

from schemas.errors import AssetlineError


class MetadataError(AssetlineError, ValueError):
    """The bytes are not a well-formed file of the claimed type, or metadata does not fit."""

    code = "deliver.metadata"
