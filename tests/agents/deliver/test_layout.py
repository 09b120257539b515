"""Delivery layout: <tenant>/<campaign>/<request_id>.<ext>, every name one safe component."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import PurePosixPath

import pytest

from agents.deliver.layout import (
    EXTENSIONS,
    MAX_COMPONENT_BYTES,
    VERSION_DIGITS,
    UnsafeNameError,
    candidate_paths,
    delivery_path,
    extension_for,
    names_version,
    safe_component,
    sidecar_path,
    version_path,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acme", "acme"),
        ("spring-sale_2024.v2", "spring-sale_2024.v2"),
        ("a@b+c=d", "a@b+c=d"),
        ("a/b", "a%2Fb"),
        ("..", "%2E."),
        (".", "%2E"),
        (".hidden", "%2Ehidden"),
        ("../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd"),
        ("a\x00b", "a%00b"),
        ("a\\b", "a%5Cb"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
    ],
)
def test_safe_component_encodes(name: str, expected: str) -> None:
    assert safe_component(name) == expected


@pytest.mark.parametrize(
    "name",
    ["/", "..", ".", "../x", "x/../..", "/etc/passwd", "\x00", ".git", "a\nb", "C:\\x", "~"],
)
def test_safe_component_is_one_harmless_component(name: str) -> None:
    encoded = safe_component(name)
    assert "/" not in encoded
    assert "\x00" not in encoded
    assert "\\" not in encoded
    assert not encoded.startswith(".")
    assert encoded not in ("", ".", "..")
    assert PurePosixPath(encoded).parts == (encoded,)
    assert encoded.isascii()
    assert encoded.isprintable()


def test_distinct_names_stay_distinct() -> None:
    names = [
        "a/b",
        "a%2Fb",
        "a%252Fb",
        "..",
        "%2E.",
        ".",
        "%2E",
        ".x",
        "%2Ex",
        "_x",
        "a b",
        "a%20b",
        "a+b",
        "é",
        "e\u0301",  # decomposed é: different code points, different name
        "A",
        "a",
    ]
    encoded = [safe_component(n) for n in names]
    assert len(set(encoded)) == len(names)


def test_encoding_is_injective_on_a_small_alphabet() -> None:
    alphabet = ["a", ".", "/", "%", "2", "E", "F", "\x00", " "]
    seen: dict[str, str] = {}
    for length in range(1, 4):
        for chars in itertools.product(alphabet, repeat=length):
            name = "".join(chars)
            encoded = safe_component(name)
            assert encoded not in seen, (name, seen.get(encoded))
            seen[encoded] = name
            assert "/" not in encoded
            assert not encoded.startswith(".")


def test_empty_name_is_refused() -> None:
    with pytest.raises(UnsafeNameError, match="empty"):
        safe_component("")
    assert UnsafeNameError.code == "deliver.unsafe_name"
    assert issubclass(UnsafeNameError, ValueError)


def test_too_long_name_is_refused_but_the_limit_itself_is_fine() -> None:
    assert safe_component("x" * MAX_COMPONENT_BYTES) == "x" * MAX_COMPONENT_BYTES
    with pytest.raises(UnsafeNameError, match="too long"):
        safe_component("x" * (MAX_COMPONENT_BYTES + 1))
    # The limit counts the encoded form: 70 x 'é' is 70 chars but 420 encoded bytes.
    with pytest.raises(UnsafeNameError):
        safe_component("é" * 70)


def test_delivery_path_layout() -> None:
    path = delivery_path("acme", "spring-sale", "req-0001", "image/png")
    assert path == PurePosixPath("acme/spring-sale/req-0001.png")
    assert not path.is_absolute()
    assert len(path.parts) == 3


def test_delivery_path_encodes_every_level() -> None:
    path = delivery_path("../tenant", "camp/aign", ".req", "text/plain")
    assert path.parts == ("%2E.%2Ftenant", "camp%2Faign", "%2Ereq.txt")
    assert ".." not in path.parts


@pytest.mark.parametrize("empty", ["tenant", "campaign", "request"])
def test_delivery_path_refuses_empty_names(empty: str) -> None:
    names = {"tenant": "t", "campaign": "c", "request": "r"}
    names[empty] = ""
    with pytest.raises(UnsafeNameError):
        delivery_path(names["tenant"], names["campaign"], names["request"], "text/plain")


@pytest.mark.parametrize(
    ("media_type", "ext"),
    [
        ("image/png", "png"),
        ("image/jpeg", "jpg"),
        ("image/webp", "webp"),
        ("text/plain", "txt"),
        ("text/plain; charset=utf-8", "txt"),
        ("application/json", "json"),
        ("APPLICATION/JSON", "json"),
        ("text/x-python", "py"),
        ("application/javascript", "js"),
        ("text/javascript", "js"),
        ("application/octet-stream", "bin"),
        ("", "bin"),
        ("../../x", "bin"),
    ],
)
def test_extensions(media_type: str, ext: str) -> None:
    assert extension_for(media_type) == ext
    assert delivery_path("t", "c", "r", media_type).name == f"r.{ext}"


def test_every_extension_is_a_plain_word() -> None:
    for ext in EXTENSIONS.values():
        assert ext.isalnum()
        assert ext.islower()


def test_a_sidecar_never_lands_on_another_requests_asset() -> None:
    """Issue 12 #13: TEXT 'r' had its sidecar at r.txt.json, the JSON asset of request 'r.txt'."""
    text = delivery_path("t", "c", "r", "text/plain")
    json_asset = delivery_path("t", "c", "r.txt", "application/json")
    assert sidecar_path(text) == PurePosixPath("t/c/r.txt.json")
    assert json_asset == PurePosixPath("t/c/r%2Etxt.json")
    assert sidecar_path(text) != json_asset


def test_no_asset_path_equals_any_sidecar_path() -> None:
    ids = ["r", "r.txt", "r.txt.json", "r.json", "r.png", "a.b.c", "r%2Etxt", ".r", "r."]
    media = [*EXTENSIONS, "application/octet-stream"]
    assets = {delivery_path("t", "c", i, m) for i, m in itertools.product(ids, media)}
    sidecars = {sidecar_path(a) for a in assets}
    assert not assets & sidecars
    # and distinct (request, media type) pairs still get distinct files
    assert len(assets) == len({(i, extension_for(m)) for i, m in itertools.product(ids, media)})


# -- versions (issue 14 part 6) ----------------------------------------------------------------

SHA_A = hashlib.sha256(b"first asset").hexdigest()
SHA_B = hashlib.sha256(b"replayed asset").hexdigest()


def test_a_version_is_named_by_its_content_beside_the_first_delivery() -> None:
    asset = delivery_path("acme", "spring", "req.1", "image/png")
    version = version_path(asset, SHA_B)
    assert version == PurePosixPath(f"acme/spring/req%2E1.{SHA_B[:16]}.png")
    assert version.parent == asset.parent
    assert version_path(asset, SHA_B.upper()) == version  # the same bytes, the same name
    assert version_path(asset, SHA_A) != version
    assert VERSION_DIGITS == 16


@pytest.mark.parametrize("bad", ["", "abc", "z" * 64, "../" + "a" * 61])
def test_a_version_needs_a_hex_digest(bad: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        version_path(PurePosixPath("t/c/r.png"), bad)


def test_versions_never_land_on_assets_or_sidecars() -> None:
    ids = ["r", "r.txt", "r.json", "a.b", ".r", f"r.{SHA_A[:16]}"]
    media = [*EXTENSIONS, "application/octet-stream"]
    assets = {delivery_path("t", "c", i, m) for i, m in itertools.product(ids, media)}
    versions = {version_path(a, sha) for a in assets for sha in (SHA_A, SHA_B)}
    sidecars = {sidecar_path(p) for p in assets | versions}
    assert not versions & assets
    assert not versions & sidecars
    assert not assets & sidecars
    assert len(versions) == 2 * len(assets)


def test_first_delivery_tries_the_plain_name_then_the_version() -> None:
    asset = PurePosixPath("t/c/r.png")
    assert candidate_paths(asset, SHA_A) == [asset, version_path(asset, SHA_A)]


def test_the_same_bytes_as_the_earlier_completion_try_the_plain_name_first() -> None:
    asset = PurePosixPath("t/c/r.png")
    found = candidate_paths(asset, SHA_A, SHA_A, "file:///d/t/c/r.png")
    assert found == [asset, version_path(asset, SHA_A)]


def test_other_bytes_than_the_earlier_completion_go_straight_to_a_version() -> None:
    """A receiver that cannot refuse (no If-None-Match) is never asked to replace the first."""
    asset = PurePosixPath("t/c/r.png")
    assert candidate_paths(asset, SHA_B, SHA_A, "https://dam/t/c/r.png") == [
        version_path(asset, SHA_B)
    ]


def test_bytes_that_were_delivered_as_a_version_go_back_to_that_version() -> None:
    asset = PurePosixPath("t/c/r.png")
    earlier = f"s3://bucket/t/c/r.{SHA_B[:16]}.png"
    assert names_version(earlier, SHA_B)
    assert not names_version(earlier, SHA_A)
    assert candidate_paths(asset, SHA_B, SHA_B, earlier) == [version_path(asset, SHA_B)]
