"""Benchmark provenance stamping (container edit) against Pillow decode + re-save with metadata.

    python -m bench.metadata [--repeats 200]

Inputs are made here: a 512x512 image from the offline renderer (what the line makes) and
uniform noise (the largest files, so the worst case for a copy-and-CRC pass), each encoded as
PNG, JPEG (quality 90) and lossy WebP (quality 80). 'stamp' is agents.deliver.metadata.stamp();
're-save' opens the file with Pillow, decodes it and saves it again with the same metadata
(EXIF + XMP, PNG text chunks) -- what a naive implementation does, losing bit-exactness too.
Target: stamping well under 1 ms per asset. Medians of `repeats` runs; prints a table.

The 'C2PA' rows are the optional C2PA manifest (agents.deliver.metadata.c2pa_manifest): their
'stamp ms' is sign_c2pa() alone on the stamped PNG, with an EC P-256 (es256) test certificate
made here and no timestamp authority; 'size KB' is the signed file. Skipped without the c2pa
extra (or cryptography, which only the bench and tests need).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from PIL import Image, PngImagePlugin

from agents.deliver.metadata import Provenance, stamp, xmp_packet
from agents.deliver.metadata.c2pa_manifest import C2paSigning, sign_c2pa
from agents.deliver.metadata.exif import exif_tiff
from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from schemas.records import AssetKind, Constraints, GenerationRequest

PROVENANCE = Provenance(
    copyright="© 2026 ACME Corp",
    creator="ACME Studio",
    campaign_id="spring-sale",
    request_id="bench-000001",
    tenant="bench",
    provider="offline",
    model_version="offline-1",
    prompt_sha256="0" * 64,
    generated_at="2026-01-01T00:00:00.000Z",
    verdict="PASS",
    attempt=1,
    metadata=(("channel", "social"),),
)
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
SAVE_PARAMS: dict[str, dict[str, object]] = {
    "PNG": {},
    "JPEG": {"quality": 90},
    "WEBP": {"quality": 80},
}


def offline_image() -> Image.Image:
    req = GenerationRequest(
        request_id="bench",
        idempotency_key="bench",
        tenant="bench",
        campaign_id="bench",
        kind=AssetKind.IMAGE,
        prompt_template="Banner for runners",
        constraints=Constraints(width=512, height=512, format="png"),
    )
    made = asyncio.run(OfflineProvider().generate(ProviderCall(req, render_prompt(req), "offline")))
    with Image.open(io.BytesIO(made.data)) as im:
        return im.convert("RGB")


def encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **SAVE_PARAMS[fmt])
    return out.getvalue()


def resave(data: bytes, fmt: str) -> bytes:
    """The naive way: decode, then encode again with the metadata."""
    xmp = xmp_packet(PROVENANCE)
    out = io.BytesIO()
    with Image.open(io.BytesIO(data)) as im:
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode())
            info.add_text("Copyright", PROVENANCE.copyright or "")
            info.add_text("Author", PROVENANCE.creator or "")
            for name, value in PROVENANCE.assetline_fields():
                info.add_text(f"assetline:{name}", value)
            im.save(out, fmt, pnginfo=info)
        else:
            exif = b"Exif\x00\x00" + exif_tiff(PROVENANCE)
            im.save(out, fmt, exif=exif, xmp=xmp, **SAVE_PARAMS[fmt])
    return out.getvalue()


def bench_signing() -> C2paSigning | None:
    """A CA and a leaf certificate fit for C2PA (keyUsage, EKU, AKI), or None without c2pa."""
    try:
        import c2pa  # noqa: F401
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        return None
    now = datetime.now(UTC)

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        ca_key: ec.EllipticCurvePrivateKey,
        issuer: str,
        ca: bool,
    ) -> x509.Certificate:
        usage = dict.fromkeys(
            (
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
            .add_extension(
                x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        return builder.sign(ca_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    chain = cert("bench signer", leaf_key, ca_key, "bench CA", ca=False).public_bytes(pem)
    chain += cert("bench CA", ca_key, ca_key, "bench CA", ca=True).public_bytes(pem)
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return C2paSigning(cert_chain=chain, private_key=key, algorithm="es256")


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(min(10, repeats)):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    images = {
        "offline": offline_image(),
        "noise": Image.frombytes("RGB", (512, 512), rng.randbytes(512 * 512 * 3)),
    }
    header = (
        f"{'input':<9} {'format':<6} {'size KB':>8} {'stamp ms':>9} {'re-save ms':>11} {'x':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, image in images.items():
        for fmt, media_type in FORMATS.items():
            data = encode(image, fmt)
            stamp_ms = median_ms(partial(stamp, data, media_type, PROVENANCE), args.repeats)
            resave_ms = median_ms(partial(resave, data, fmt), max(20, args.repeats // 10))
            print(
                f"{name:<9} {fmt:<6} {len(data) / 1024:>8.1f} {stamp_ms:>9.3f} "
                f"{resave_ms:>11.2f} {resave_ms / stamp_ms:>6.0f}"
            )
    signing = bench_signing()
    if signing is None:
        print("C2PA rows skipped: install the c2pa extra and cryptography")
        return
    for name, image in images.items():
        stamped = stamp(encode(image, "PNG"), "image/png", PROVENANCE).data
        sign = partial(sign_c2pa, stamped, "image/png", PROVENANCE, signing)
        sign_ms = median_ms(sign, args.repeats)
        size = len(sign())
        print(f"{name:<9} {'C2PA':<6} {size / 1024:>8.1f} {sign_ms:>9.3f} {'-':>11} {'-':>6}")


if __name__ == "__main__":
    main()
