"""A C2PA manifest signed into delivered images: an AI disclosure a receiver can verify.

The XMP DigitalSourceType says "made by a trained model", but anyone can edit or forge it. A
C2PA manifest binds the same disclosure, the author/copyright and our provenance ids to a hash
of the file under a certificate, so a receiver can check who made the claim and that the file
is unchanged since. c2pa-python is an optional extra (``assetline[c2pa]``): it is imported only
when signing is configured, and :func:`load_c2pa_signing` stops the worker at start-up if it is
configured but missing, instead of failing every delivery later.

Signing must be the last edit of the file: the manifest hashes the final bytes, so XMP/EXIF go
in first (``stamp()``), then :func:`sign_c2pa`. Like ``stamp()`` it never re-encodes pixels.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from agents.deliver.layout import extension_for
from agents.deliver.metadata.errors import MetadataError
from agents.deliver.metadata.fields import DIGITAL_SOURCE_TYPE, Provenance
from streams.config_files import ConfigError

#: Label of our own assertion; reverse-DNS style as the C2PA spec asks of custom labels.
PROVENANCE_LABEL = "io.assetline.provenance"
#: The algorithms c2pa-rs signs with; the key type must match (EC P-256 for es256, ...).
ALGORITHMS = frozenset({"es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"})

_MEDIA_TYPES = {
    "image/png": "image/png",
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/webp": "image/webp",
}
# No claim thumbnail: it would be a re-encoded JPEG copy of the asset itself (tens of KB and
# a decode + encode per asset) that adds nothing a receiver does not already have.
_SDK_SETTINGS: dict[str, Any] = {"builder": {"thumbnail": {"enabled": False}}}
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.DOTALL)
_INSTALL_HINT = "install the extra: pip install 'assetline[c2pa]'"


@dataclass(frozen=True, slots=True)
class C2paSigning:
    """What signing needs: the certificate chain and its key, both PEM, and the algorithm.

    ``private_key`` is kept out of ``repr`` so the object can be logged. ``tsa_url`` (an RFC 3161
    timestamp authority) is off by default: with it, every signature is a network call.
    """

    cert_chain: bytes
    private_key: bytes = field(repr=False)
    algorithm: str = "es256"
    tsa_url: str | None = None


def c2pa_media_type(media_type: str) -> str | None:
    """The media type c2pa signs for ``media_type`` (parameters, case ignored), or None."""
    return _MEDIA_TYPES.get(media_type.split(";", 1)[0].strip().lower())


def manifest_definition(media_type: str, p: Provenance) -> dict[str, Any]:
    """The manifest we sign, as c2pa-python's JSON definition (pure: testable without c2pa).

    ``c2pa.created`` with the IPTC digitalSourceType is what C2PA viewers show as "AI
    generated"; CreativeWork carries the brand's author/copyright; our ids go in our assertion.
    """
    action: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "softwareAgent": {"name": p.provider, "version": p.model_version},
        "when": p.generated_at,
    }
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions", "data": {"actions": [action]}},
    ]
    work: dict[str, Any] = {"@context": "https://schema.org", "@type": "CreativeWork"}
    if p.creator is not None:
        work["author"] = [{"@type": "Organization", "name": p.creator}]
    if p.copyright is not None:
        work["copyrightNotice"] = p.copyright
    if len(work) > 2:
        assertions.append({"label": "stds.schema-org.CreativeWork", "data": work})
    ours: dict[str, Any] = dict(p.assetline_fields())
    ours["attempt"] = p.attempt
    if p.metadata:
        ours["metadata"] = dict(p.metadata)
    assertions.append({"label": PROVENANCE_LABEL, "data": ours})
    return {
        "claim_generator_info": [{"name": "assetline", "version": _version()}],
        "title": f"{p.request_id}.{extension_for(media_type)}",
        "format": media_type,
        "assertions": assertions,
    }


def sign_c2pa(data: bytes, media_type: str, p: Provenance, signing: C2paSigning) -> bytes:
    """``data`` with a signed C2PA manifest embedded (PNG, JPEG, WebP); pixels are untouched.

    Raises :class:`MetadataError` for other media types, malformed images, a missing c2pa
    package or any signing failure (the message never holds key material).
    """
    media = c2pa_media_type(media_type)
    if media is None:
        raise MetadataError(f"C2PA signing supports PNG, JPEG and WebP, not {media_type!r}")
    try:
        c2pa = _import_c2pa()
    except ImportError as exc:
        raise MetadataError(
            f"C2PA signing is configured but c2pa is missing; {_INSTALL_HINT}"
        ) from exc
    definition = json.dumps(manifest_definition(media, p))
    out = io.BytesIO()
    try:
        info = c2pa.C2paSignerInfo(
            signing.algorithm.encode("ascii"),
            signing.cert_chain,
            signing.private_key,
            signing.tsa_url.encode("utf-8") if signing.tsa_url else None,
        )
        with (
            c2pa.Settings.from_dict(_SDK_SETTINGS) as settings,
            c2pa.Context(settings=settings) as context,
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(definition, context) as builder,
        ):
            builder.sign(signer, media, io.BytesIO(data), out)
    except (c2pa.C2paError, ValueError, TypeError) as exc:
        raise MetadataError(f"C2PA signing failed: {_safe_message(exc)}") from None
    return out.getvalue()


def load_c2pa_signing(
    cert_file: Path | None,
    api_keys: Mapping[str, SecretStr],
    *,
    key_name: str = "c2pa",
    algorithm: str = "es256",
    tsa_url: str | None = None,
) -> C2paSigning | None:
    """Signing from the settings, None when no certificate is set; checked at start-up.

    The private key is read from ``api_keys[key_name]`` so it is never a plain setting. A
    missing key, a missing c2pa package, or a certificate/key/algorithm that cannot sign raises
    a one-line :class:`~streams.config_files.ConfigError` (a ``ValueError``) here (a test
    signature is made), so the worker's start fails in one line, not every delivery later.
    """
    if cert_file is None:
        return None
    try:
        _import_c2pa()
    except ImportError as exc:
        raise ConfigError(
            f"c2pa_cert_file is set but c2pa is not installed; {_INSTALL_HINT}"
        ) from exc
    alg = algorithm.strip().lower()
    if alg not in ALGORITHMS:
        raise ConfigError(f"c2pa_algorithm {algorithm!r} is not one of {sorted(ALGORITHMS)}")
    try:
        chain = cert_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"c2pa_cert_file {cert_file}: cannot read it ({exc.strerror})") from exc
    if b"-----BEGIN CERTIFICATE-----" not in chain:
        raise ConfigError(f"c2pa_cert_file {cert_file}: no PEM certificate in it")
    secret = api_keys.get(key_name)
    key = secret.get_secret_value() if secret is not None else ""
    if not key.strip():
        raise ConfigError(
            f"c2pa_cert_file is set but api_keys has no {key_name!r} entry with the PEM "
            "private key (set it in ASSETLINE_API_KEYS, or name another with c2pa_key_secret)"
        )
    if tsa_url is not None and not tsa_url.startswith(("http://", "https://")):
        raise ConfigError("c2pa_tsa_url must be an http(s) URL")
    signing = C2paSigning(chain, key.encode("utf-8"), alg, tsa_url)
    try:  # without the TSA: a start-up check should not depend on a remote service
        sign_c2pa(_probe_png(), "image/png", _PROBE, replace(signing, tsa_url=None))
    except MetadataError as exc:
        raise ConfigError(f"c2pa_cert_file {cert_file} with key {key_name!r}: {exc}") from None
    return signing


def _import_c2pa() -> Any:
    """The c2pa module, imported on first use so the package works without the extra."""
    try:
        import c2pa
    except OSError as exc:  # the wheel is there but its native library does not load
        raise ImportError(f"c2pa's native library does not load: {exc}") from exc
    return c2pa


def _safe_message(exc: BaseException) -> str:
    """The error text, with any PEM block cut out and the length bounded, fit for a log."""
    text = _PEM_BLOCK.sub(b"[PEM]", str(exc).encode("utf-8", "replace")).decode("utf-8")
    return text[:300] or type(exc).__name__


def _version() -> str:
    try:
        return metadata.version("assetline")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def _probe_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, "PNG")
    return out.getvalue()


_PROBE = Provenance(
    copyright=None,
    creator=None,
    campaign_id="start-up-check",
    request_id="start-up-check",
    tenant="assetline",
    provider="assetline",
    model_version="0",
    prompt_sha256="0" * 64,
    generated_at="1970-01-01T00:00:00.000Z",
    verdict="PASS",
    attempt=1,
)
