"""Label an approved asset before it leaves: its brand's provenance, stamped into the file.

The brand profile (the same one validation used) supplies copyright, creator and which request
metadata may be written; everything else comes from the asset's own record.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.deliver.metadata import Stamped, provenance_for, stamp
from agents.validate.policy import PolicyError, ProfileBook
from streams.records import ValidatedAsset


@dataclass(frozen=True)
class Labeller:
    """Stamps provenance into asset bytes; ``enabled=False`` delivers the bytes untouched."""

    book: ProfileBook
    include_prompt: bool = False
    enabled: bool = True

    def __call__(self, validated: ValidatedAsset, data: bytes) -> Stamped:
        """The bytes to deliver (and a sidecar for non-images); raises ``MetadataError``."""
        if not self.enabled or validated.raw.blob is None:
            return Stamped(data=data, sidecar=None)
        request = validated.raw.request
        policy = self.book.resolve(request.brand_profile_id, request.campaign_id)
        found = None if isinstance(policy, PolicyError) else policy
        provenance = provenance_for(
            validated,
            copyright=found.copyright if found else None,
            creator=found.creator if found else None,
            allowed_metadata=found.metadata_keys if found else (),
            include_prompt=self.include_prompt,
        )
        return stamp(data, validated.raw.blob.media_type, provenance)
