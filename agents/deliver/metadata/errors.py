"""The one exception of the metadata package, so callers can tell bad files from bugs."""

from __future__ import annotations


class MetadataError(ValueError):
    """The bytes are not a well-formed file of the claimed type, or metadata does not fit."""
