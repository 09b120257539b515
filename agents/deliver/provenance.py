"""Label an approved asset before it leaves: its brand's provenance, stamped into the file.

The brand profile (the same one validation used) supplies copyright, creator and which request
metadata may be written; everything else comes from the asset's own record. With a certificate
configured, images also get a signed C2PA manifest, made last because it hashes the final bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.deliver.metadata import Stamped, provenance_for, stamp
from agents.deliver.metadata.c2pa_manifest import C2paSigning, c2pa_media_type, sign_c2pa
from agents.policy import PolicyError, ProfileBook
from schemas.records import ValidatedAsset


@dataclass(frozen=True)
class Labeller:
    """Stamps provenance into asset bytes; ``enabled=False`` delivers the bytes untouched.

    ``c2pa`` (optional) signs a C2PA manifest into PNG/JPEG/WebP after the XMP/EXIF stamp.
    """

    book: ProfileBook
    include_prompt: bool = False
    enabled: bool = True
    c2pa: C2paSigning | None = None

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
        media_type = validated.raw.blob.media_type
        stamped = stamp(data, media_type, provenance)
        if self.c2pa is None or stamped.sidecar is not None or c2pa_media_type(media_type) is None:
            return stamped
        # Last: the manifest's hash covers the bytes as delivered, XMP/EXIF included.
        return Stamped(
            data=sign_c2pa(stamped.data, media_type, provenance, self.c2pa), sidecar=None
        )
