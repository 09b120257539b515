"""stamp(): dispatch by media type; non-images get a JSON sidecar and are left unchanged."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest
from PIL import Image

from agents.deliver.metadata import (
    DIGITAL_SOURCE_TYPE,
    MetadataError,
    Provenance,
    Stamped,
    sidecar_json,
    stamp,
    stamp_jpeg,
    stamp_png,
    stamp_webp,
)

MakeImage = Callable[..., bytes]


@pytest.mark.parametrize(
    ("fmt", "media_type", "stamper"),
    [
        ("PNG", "image/png", stamp_png),
        ("JPEG", "image/jpeg", stamp_jpeg),
        ("WEBP", "IMAGE/WebP", stamp_webp),
    ],
)
def test_images_are_stamped_in_place(
    make_image: MakeImage,
    provenance: Provenance,
    fmt: str,
    media_type: str,
    stamper: Callable[[bytes, Provenance], bytes],
) -> None:
    data = make_image(fmt)
    out = stamp(data, media_type, provenance)
    assert out == Stamped(data=stamper(data, provenance), sidecar=None)
    assert out.data != data


@pytest.mark.parametrize(
    "media_type", ["text/plain; charset=utf-8", "application/json", "text/x-python", "image/gif"]
)
def test_other_assets_get_a_sidecar(provenance: Provenance, media_type: str) -> None:
    data = b'{"copy": "hello"}'
    out = stamp(data, media_type, provenance)
    assert out.data is data
    assert out.sidecar == sidecar_json(provenance)


def test_sidecar_content(provenance: Provenance) -> None:
    raw = sidecar_json(provenance)
    doc = json.loads(raw.decode("utf-8"))
    assert doc["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert doc["copyright"] == provenance.copyright
    assert doc["creator"] == provenance.creator
    assert doc["metadata"] == {"channel": "social & <web>", "locale": "de-DE"}
    assert doc["prompt_sha256"] == "a" * 64
    assert doc["attempt"] == 2
    assert list(doc) == sorted(doc)
    assert "Söhne".encode() in raw  # UTF-8, not \\u escapes


def test_wrong_bytes_for_media_type(provenance: Provenance, make_image: MakeImage) -> None:
    with pytest.raises(MetadataError):
        stamp(make_image("PNG"), "image/jpeg", provenance)


def test_metadata_error_is_a_value_error() -> None:
    assert issubclass(MetadataError, ValueError)


def test_decoded_image_unchanged_through_stamp(
    make_image: MakeImage, provenance: Provenance
) -> None:
    data = make_image("PNG", "RGBA")
    stamped = stamp(data, "image/png", provenance).data
    with Image.open(io.BytesIO(stamped)) as a, Image.open(io.BytesIO(data)) as b:
        assert a.tobytes() == b.tobytes()
