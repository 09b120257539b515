"""C2PA manifests: signed with a test certificate made here, checked with c2pa's own Reader.

No trust list is configured, so the reader reports our test CA as untrusted; everything else
(claim signature, assertion hashes, the data hash over the file) must validate. No network.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from pydantic import SecretStr

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, MetadataError, Provenance, stamp
from agents.deliver.metadata.c2pa_manifest import (
    PROVENANCE_LABEL,
    C2paSigning,
    c2pa_media_type,
    load_c2pa_signing,
    manifest_definition,
    sign_c2pa,
)
from agents.deliver.provenance import Labeller
from agents.media.container import container_problem
from agents.policy import load_profiles
from schemas.records import (
    AssetKind,
    BlobRef,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.config_files import ConfigError
from streams.settings import Settings

MakeImage = Callable[..., bytes]
Decode = Callable[[bytes], tuple[str, tuple[int, int], bytes]]

UNTRUSTED = "signingCredential.untrusted"
#: Every code c2pa-rs 0.91 reports for a good signature by a CA it was not told to trust.
SUCCESS_CODES = {
    "claimSignature.insideValidity",
    "claimSignature.validated",
    "assertion.hashedURI.match",
    "assertion.dataHash.match",
}
INFORMATIONAL_CODES = {"signingCredential.ocsp.skipped"}
FORMATS = [
    pytest.param("PNG", "image/png", {}, id="png"),
    pytest.param("JPEG", "image/jpeg", {"quality": 90}, id="jpeg"),
    pytest.param("WEBP", "image/webp", {"quality": 80}, id="webp"),
]


# -- a test PKI: a CA and a signing certificate with the extensions c2pa-rs requires ----------


@dataclass(frozen=True)
class Pki:
    chain: bytes  # leaf first, then the CA
    key: bytes
    other_key: bytes  # a valid key that does not belong to the certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Assetline Test"),
        ]
    )


def _key_usage(*, sign: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(leaf_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> Pki:
    """CA (P-256) -> leaf: keyUsage digitalSignature, EKU emailProtection, not a CA, with AKI."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Assetline Test CA"))
        .issuer_name(_name("Assetline Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Assetline Test Signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    other = ec.generate_private_key(ec.SECP256R1())
    return Pki(chain=chain, key=_pem_key(leaf_key), other_key=_pem_key(other))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def signing(pki: Pki) -> C2paSigning:
    return C2paSigning(cert_chain=pki.chain, private_key=pki.key, algorithm="es256")


@pytest.fixture
def cert_file(tmp_path: Path, pki: Pki) -> Path:
    path = tmp_path / "c2pa-chain.pem"
    path.write_bytes(pki.chain)
    return path


def read(data: bytes, media_type: str) -> dict[str, Any]:
    with c2pa.Reader(media_type, io.BytesIO(data)) as reader:
        store: dict[str, Any] = json.loads(reader.json())
    return store


def active(store: dict[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = store["manifests"][store["active_manifest"]]
    return manifest


def assertion(manifest: dict[str, Any], label: str) -> Any:
    found = [a["data"] for a in manifest["assertions"] if a["label"] == label]
    assert len(found) == 1, [a["label"] for a in manifest["assertions"]]
    return found[0]


def codes(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["code"] for entry in entries]


def xmp_of(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        raw = image.text["XML:com.adobe.xmp"] if image.format == "PNG" else image.info["xmp"]
    return raw if isinstance(raw, str) else raw.decode("utf-8")


def tamper_pixels(signed: bytes, unsigned: bytes) -> bytes:
    """Flip one bit inside the image data (found as a run of the original's middle bytes)."""
    middle = len(unsigned) // 2
    run = unsigned[middle : middle + 32]
    at = signed.find(run)
    assert at > 0
    assert signed.count(run) == 1
    # Stay clear of 0xFE/0xFF so a JPEG scan cannot grow a marker: only the hash should fail.
    at += next(i for i, byte in enumerate(run) if byte < 0xF0)
    out = bytearray(signed)
    out[at] ^= 0x01
    return bytes(out)


# -- the manifest ------------------------------------------------------------------------------


def test_definition_says_ai_generated_by_whom_and_for_which_request(
    provenance: Provenance,
) -> None:
    definition = manifest_definition("image/png", provenance)
    assert definition["claim_generator_info"][0]["name"] == "assetline"
    assert definition["title"] == "req-42.png"
    labels = [a["label"] for a in definition["assertions"]]
    assert labels == ["c2pa.actions", "stds.schema-org.CreativeWork", PROVENANCE_LABEL]
    (action,) = definition["assertions"][0]["data"]["actions"]
    assert action == {
        "action": "c2pa.created",
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "softwareAgent": {"name": "offline", "version": "offline-1.0"},
        "when": "2026-03-01T12:00:00.000Z",
    }
    ours = definition["assertions"][2]["data"]
    assert ours["request_id"] == "req-42"
    assert ours["attempt"] == 2
    assert ours["metadata"] == {"channel": "social & <web>", "locale": "de-DE"}
    assert "prompt" not in ours  # only its hash, unless the line is told to include it


def test_definition_without_author_or_copyright_has_no_creative_work(
    provenance: Provenance,
) -> None:
    bare = replace(provenance, creator=None, copyright=None, metadata=())
    definition = manifest_definition("image/jpeg", bare)
    labels = [a["label"] for a in definition["assertions"]]
    assert labels == ["c2pa.actions", PROVENANCE_LABEL]
    assert "metadata" not in definition["assertions"][1]["data"]
    assert definition["title"] == "req-42.jpg"


@pytest.mark.parametrize(("fmt", "media_type", "params"), FORMATS)
def test_signed_image_validates_with_the_c2pa_reader(
    make_image: MakeImage,
    decode: Decode,
    provenance: Provenance,
    signing: C2paSigning,
    fmt: str,
    media_type: str,
    params: dict[str, Any],
) -> None:
    original = make_image(fmt, **params)
    stamped = stamp(original, media_type, provenance).data
    signed = sign_c2pa(stamped, media_type, provenance, signing)

    store = read(signed, media_type)
    manifest = active(store)
    assert manifest["claim_generator_info"][0]["name"] == "assetline"
    assert manifest["signature_info"]["common_name"] == "Assetline Test Signer"
    assert manifest["signature_info"]["alg"] == "Es256"
    (action,) = assertion(manifest, "c2pa.actions.v2")["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    work = assertion(manifest, "stds.schema-org.CreativeWork")
    assert work["author"] == [{"@type": "Organization", "name": provenance.creator}]
    assert work["copyrightNotice"] == provenance.copyright
    ours = assertion(manifest, PROVENANCE_LABEL)
    assert (ours["request_id"], ours["campaign_id"], ours["model_version"]) == (
        "req-42",
        "spring-sale",
        "offline-1.0",
    )
    assert "thumbnail" not in manifest  # no re-encoded copy of the asset inside the manifest

    # Valid, and the only complaint is that nobody told the reader to trust our test CA.
    assert store["validation_state"] == "Valid"
    assert codes(store["validation_status"]) == [UNTRUSTED]
    results = store["validation_results"]["activeManifest"]
    assert codes(results["failure"]) == [UNTRUSTED]
    assert set(codes(results["success"])) == SUCCESS_CODES
    assert set(codes(results["informational"])) == INFORMATIONAL_CODES

    # The signature is a container edit, like the stamp: same pixels, XMP still readable.
    assert decode(signed) == decode(original)
    assert DIGITAL_SOURCE_TYPE in xmp_of(signed)
    assert len(signed) - len(stamped) < 8 * 1024

    tampered = read(tamper_pixels(signed, original), media_type)
    assert tampered["validation_state"] == "Invalid"
    assert codes(tampered["validation_status"]) == [UNTRUSTED, "assertion.dataHash.mismatch"]


@pytest.mark.parametrize(("fmt", "media_type", "params"), FORMATS)
def test_a_signed_file_is_well_formed_and_a_restamp_drops_its_stale_manifest(
    make_image: MakeImage,
    provenance: Provenance,
    other_provenance: Provenance,
    signing: C2paSigning,
    fmt: str,
    media_type: str,
    params: dict[str, Any],
) -> None:
    """Issue 12 item 12: a real C2PA manifest (PNG caBX, JPEG APP11 JUMBF, WebP C2PA chunk)
    does not survive a new stamp, where its hash no longer holds and its claims are stale."""
    signed = sign_c2pa(
        stamp(make_image(fmt, **params), media_type, provenance).data,
        media_type,
        provenance,
        signing,
    )
    assert container_problem(signed) is None  # what c2pa writes passes image.container
    assert active(read(signed, media_type))
    restamped = stamp(signed, media_type, other_provenance).data
    assert b"c2pa" not in restamped
    assert b"spring-sale" not in restamped  # the old campaign lived on only in the manifest
    with pytest.raises(c2pa.C2paError):
        read(restamped, media_type)
    assert "req-43" in xmp_of(restamped)


def test_ed25519_signing(make_image: MakeImage, provenance: Provenance) -> None:
    pki = make_pki(ed25519.Ed25519PrivateKey.generate())
    signing = C2paSigning(cert_chain=pki.chain, private_key=pki.key, algorithm="ed25519")
    signed = sign_c2pa(make_image("PNG"), "image/png", provenance, signing)
    store = read(signed, "image/png")
    assert active(store)["signature_info"]["alg"] == "Ed25519"
    assert codes(store["validation_status"]) == [UNTRUSTED]


@pytest.mark.parametrize("media_type", ["image/gif", "text/plain", "application/json"])
def test_other_media_types_are_refused(
    provenance: Provenance, signing: C2paSigning, media_type: str
) -> None:
    assert c2pa_media_type(media_type) is None
    with pytest.raises(MetadataError, match="PNG, JPEG and WebP"):
        sign_c2pa(b"GIF89a", media_type, provenance, signing)


def test_media_type_parameters_and_case_are_ignored() -> None:
    assert c2pa_media_type("IMAGE/JPG; q=1") == "image/jpeg"
    assert c2pa_media_type("image/webp") == "image/webp"


def test_malformed_image_is_a_metadata_error(
    make_image: MakeImage, provenance: Provenance, signing: C2paSigning
) -> None:
    with pytest.raises(MetadataError, match="C2PA signing failed"):
        sign_c2pa(make_image("PNG"), "image/jpeg", provenance, signing)


def test_a_key_that_is_not_the_certificates_fails_without_showing_it(
    make_image: MakeImage, provenance: Provenance, pki: Pki, signing: C2paSigning
) -> None:
    wrong = replace(signing, private_key=pki.other_key)
    with pytest.raises(MetadataError, match="C2PA signing failed") as caught:
        sign_c2pa(make_image("PNG"), "image/png", provenance, wrong)
    assert "PRIVATE KEY" not in str(caught.value)
    assert pki.other_key.decode() not in repr(wrong)  # the key is kept out of repr, too


def test_signing_without_the_extra_is_a_clear_metadata_error(
    monkeypatch: pytest.MonkeyPatch,
    make_image: MakeImage,
    provenance: Provenance,
    signing: C2paSigning,
) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # `import c2pa` now raises ImportError
    with pytest.raises(MetadataError, match=r"assetline\[c2pa\]"):
        sign_c2pa(make_image("PNG"), "image/png", provenance, signing)


def test_the_package_imports_without_loading_c2pa() -> None:
    code = (
        "import sys; import agents.deliver.agent, agents.deliver.provenance; "
        "assert 'c2pa' not in sys.modules, 'c2pa imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- the labeller: XMP first, C2PA last ----------------------------------------------------------


def _image_asset(media_type: str, kind: AssetKind = AssetKind.IMAGE) -> ValidatedAsset:
    request = GenerationRequest(
        request_id="r-7",
        idempotency_key="k",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template="hi",
        brand_profile_id="acme",
    )
    blob = BlobRef(sha256="0" * 64, size=1, media_type=media_type, uri="file:///nowhere")
    raw = RawAsset(request=request, blob=blob, provider="offline", model_version="1", latency_ms=1)
    return ValidatedAsset(raw=raw, report=ValidationReport(verdict=Verdict.PASS))


@pytest.fixture
def labeller(tmp_path: Path, signing: C2paSigning) -> Labeller:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "acme.yaml").write_text('copyright: "(c) ACME"\ncreator: ACME Studio\n')
    return Labeller(load_profiles(folder), c2pa=signing)


def test_labeller_signs_after_the_xmp_stamp(
    labeller: Labeller, make_image: MakeImage, decode: Decode
) -> None:
    original = make_image("PNG")
    out = labeller(_image_asset("image/png"), original)
    assert out.sidecar is None
    store = read(out.data, "image/png")
    manifest = active(store)
    assert assertion(manifest, PROVENANCE_LABEL)["request_id"] == "r-7"
    assert assertion(manifest, "stds.schema-org.CreativeWork")["copyrightNotice"] == "(c) ACME"
    assert codes(store["validation_status"]) == [UNTRUSTED]
    xmp = xmp_of(out.data)
    assert DIGITAL_SOURCE_TYPE in xmp
    assert "ACME Studio" in xmp
    assert decode(out.data) == decode(original)


def test_labeller_leaves_non_images_to_the_sidecar(labeller: Labeller) -> None:
    out = labeller(_image_asset("text/plain", AssetKind.TEXT), b"hello")
    assert out.data == b"hello"
    assert out.sidecar is not None


def test_labeller_without_c2pa_does_not_sign(labeller: Labeller, make_image: MakeImage) -> None:
    out = replace(labeller, c2pa=None)(_image_asset("image/png"), make_image("PNG"))
    with pytest.raises(c2pa.C2paError):
        read(out.data, "image/png")


# -- start-up: loading the signing settings --------------------------------------------------


def test_loader_is_off_without_a_certificate() -> None:
    assert load_c2pa_signing(None, {}) is None


def test_loader_reads_the_certificate_file_and_the_key_secret(cert_file: Path, pki: Pki) -> None:
    loaded = load_c2pa_signing(
        cert_file, {"brand-c2pa": SecretStr(pki.key.decode())}, key_name="brand-c2pa"
    )
    assert loaded == C2paSigning(cert_chain=pki.chain, private_key=pki.key, algorithm="es256")
    assert "PRIVATE KEY" not in repr(loaded)


def test_loader_from_environment_settings(
    monkeypatch: pytest.MonkeyPatch, cert_file: Path, pki: Pki
) -> None:
    """The PEM key travels as a JSON string (newlines escaped) in ASSETLINE_API_KEYS."""
    monkeypatch.setenv("ASSETLINE_C2PA_CERT_FILE", str(cert_file))
    monkeypatch.setenv("ASSETLINE_C2PA_ALGORITHM", "ES256")
    monkeypatch.setenv("ASSETLINE_API_KEYS", json.dumps({"c2pa": pki.key.decode()}))
    settings = Settings()
    loaded = load_c2pa_signing(
        settings.c2pa_cert_file,
        settings.api_keys,
        key_name=settings.c2pa_key_secret,
        algorithm=settings.c2pa_algorithm,
        tsa_url=settings.c2pa_tsa_url,
    )
    assert loaded is not None
    assert (loaded.algorithm, loaded.tsa_url) == ("es256", None)


def test_loader_fails_clearly_on_a_missing_key_secret(cert_file: Path) -> None:
    with pytest.raises(ConfigError, match="api_keys has no 'c2pa' entry") as caught:
        load_c2pa_signing(cert_file, {"openai": SecretStr("sk-123")})
    assert "sk-123" not in str(caught.value)


def test_loader_fails_at_start_up_on_a_key_that_cannot_sign(cert_file: Path, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="C2PA signing failed") as caught:
        load_c2pa_signing(cert_file, {"c2pa": SecretStr(pki.other_key.decode())})
    assert "PRIVATE KEY" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithm": "rs256"}, "c2pa_algorithm 'rs256' is not one of"),
        ({"tsa_url": "ftp://tsa"}, "c2pa_tsa_url must be an http"),
    ],
)
def test_loader_rejects_bad_settings(
    cert_file: Path, pki: Pki, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_c2pa_signing(cert_file, {"c2pa": SecretStr(pki.key.decode())}, **kwargs)


def test_loader_rejects_a_file_without_a_certificate(tmp_path: Path, pki: Pki) -> None:
    path = tmp_path / "key-by-mistake.pem"
    path.write_bytes(pki.key)
    with pytest.raises(ConfigError, match="no PEM certificate"):
        load_c2pa_signing(path, {"c2pa": SecretStr(pki.key.decode())})
    with pytest.raises(ConfigError, match="cannot read it"):
        load_c2pa_signing(tmp_path / "missing.pem", {"c2pa": SecretStr(pki.key.decode())})


def test_loader_fails_clearly_without_the_extra(
    monkeypatch: pytest.MonkeyPatch, cert_file: Path, pki: Pki
) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)
    with pytest.raises(ConfigError, match=r"c2pa is not installed.*assetline\[c2pa\]"):
        load_c2pa_signing(cert_file, {"c2pa": SecretStr(pki.key.decode())})
