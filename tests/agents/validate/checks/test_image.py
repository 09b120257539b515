"""Image checks on real PNG/JPEG/WebP bytes made with Pillow, including broken files and bombs."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageFile

from agents.validate.checks._base import Subject
from agents.validate.checks.image import (
    DEFAULT_MAX_PIXELS,
    ImageAnimation,
    ImageDecodes,
    ImageFormat,
    ImageProber,
    ImageSize,
    image_checks,
    probe_image,
)
from schemas.records import AssetKind, Constraints, GenerationRequest


def request(**constraints: object) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="k-1",
        tenant="acme",
        campaign_id="c-1",
        kind=AssetKind.IMAGE,
        prompt_template="a cat",
        constraints=Constraints.model_validate(constraints),
    )


def subject(data: bytes, **constraints: object) -> Subject:
    return Subject(request=request(**constraints), data=data, media_type="image/png")


def encode(fmt: str, width: int, height: int, *, noise: bool = False) -> bytes:
    image = (
        Image.effect_noise((width, height), 64).convert("RGB")
        if noise
        else Image.new("RGB", (width, height), (200, 30, 60))
    )
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size, with a valid IHDR CRC (a decompression bomb)."""
    assert png[12:16] == b"IHDR"
    fields = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + fields))
    return png[:16] + fields + crc + png[33:]


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel data gets decoded."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "PNG"), ("JPEG", "JPEG"), ("WEBP", "WEBP")])
def test_valid_images_pass_all_three_checks(fmt: str, name: str) -> None:
    data = encode(fmt, 64, 48)
    decodes, format_, size = image_checks()
    s = subject(data, format=fmt.lower(), width=64, height=48)

    assert decodes(s).model_dump() == {
        "code": "image.decodes",
        "passed": True,
        "message": f"decodes as {name} 64x48",
        "measured": f"{name} 64x48",
        "repairable": False,
    }
    assert format_(s).passed
    assert format_(s).measured == name
    assert size(s).passed
    assert size(s).measured == "64x48"


def test_format_mismatch_names_both_formats() -> None:
    result = ImageFormat()(subject(encode("JPEG", 8, 8), format="png"))
    assert result.code == "image.format"
    assert not result.passed
    assert result.message == "expected PNG, got JPEG"
    assert result.measured == "JPEG"


@pytest.mark.parametrize("spelling", ["jpg", "JPEG", " jpeg "])
def test_format_accepts_jpeg_spellings(spelling: str) -> None:
    result = ImageFormat()(subject(encode("JPEG", 8, 8), format=spelling))
    assert result.passed, result.message


def test_unset_format_accepts_any_but_still_measures() -> None:
    result = ImageFormat()(subject(encode("WEBP", 8, 8)))
    assert result.passed
    assert result.measured == "WEBP"


def test_unsupported_format_constraint_fails_clearly() -> None:
    result = ImageFormat()(subject(encode("PNG", 8, 8), format="gif"))
    assert not result.passed
    assert "unsupported format constraint 'gif'" in result.message


def test_size_mismatch_reports_each_wrong_dimension() -> None:
    result = ImageSize()(subject(encode("PNG", 512, 256), width=512, height=512))
    assert result.code == "image.size"
    assert not result.passed
    assert result.measured == "512x256"
    assert result.message == "expected 512x512, got 512x256: height 256 != 512"


def test_size_checks_only_the_constrained_dimension() -> None:
    data = encode("PNG", 300, 200)
    assert ImageSize()(subject(data, width=300)).passed
    wrong = ImageSize()(subject(data, height=100))
    assert not wrong.passed
    assert wrong.message == "expected *x100, got 300x200: height 200 != 100"


def test_unset_size_passes_and_measures() -> None:
    result = ImageSize()(subject(encode("PNG", 5, 7)))
    assert result.passed
    assert result.measured == "5x7"


def test_truncated_png_fails_to_decode_but_header_facts_remain() -> None:
    data = encode("PNG", 256, 256, noise=True)
    decodes, format_, size = image_checks()
    s = subject(data[: len(data) // 2], format="png", width=256, height=256)

    result = decodes(s)
    assert not result.passed
    assert result.message.startswith("does not decode: OSError: image file is truncated")
    assert result.measured == "PNG 256x256"
    # The header is intact, so format and size are still judged on their own.
    assert format_(s).passed
    assert size(s).passed


def test_png_cut_before_iend_fails() -> None:
    data = encode("PNG", 32, 32)
    result = ImageDecodes()(subject(data[:-12]))
    assert not result.passed
    assert "IEND" in result.message


def test_truncated_jpeg_fails() -> None:
    data = encode("JPEG", 128, 128, noise=True)
    result = ImageDecodes()(subject(data[:-2]))
    assert not result.passed
    assert "truncated" in result.message


@pytest.mark.parametrize(
    "data", [b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n"], ids=["empty", "text", "signature"]
)
def test_non_images_fail_every_check_without_crashing(data: bytes) -> None:
    decodes, format_, size = image_checks()
    s = subject(data, format="png", width=1, height=1)
    results = [decodes(s), format_(s), size(s)]
    assert [r.passed for r in results] == [False, False, False]
    assert results[1].message == "expected PNG, but no image header was readable"
    assert results[2].message == "expected 1x1, but no image header was readable"


def test_formats_outside_the_allow_list_are_refused() -> None:
    result = ImageDecodes()(subject(encode("GIF", 8, 8)))
    assert not result.passed
    assert result.message == "not a PNG/JPEG/WEBP image"


def test_bomb_above_our_limit_is_refused_before_decoding(
    no_decoding: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8000x8000 = 64M pixels: under Pillow's own limits, above our default of 40M.
    bomb = with_ihdr_size(encode("PNG", 1, 1), 8000, 8000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # our guard must not depend on it

    result = ImageDecodes()(subject(bomb))

    assert not result.passed
    assert result.message == (
        "8000x8000 is 64000000 pixels, above the limit of 40000000 "
        "(decompression bomb guard); not decoded"
    )
    assert result.measured == "PNG 8000x8000"


def test_bomb_beyond_pillows_hard_limit_is_a_failed_check(no_decoding: None) -> None:
    bomb = with_ihdr_size(encode("PNG", 1, 1), 50_000, 50_000)
    decodes, _, size = image_checks()
    s = subject(bomb, width=50_000, height=50_000)

    result = decodes(s)
    assert not result.passed
    assert result.message.startswith("refused as a decompression bomb:")
    assert not size(s).passed


def test_pillow_bomb_warning_raised_as_error_is_caught(no_decoding: None) -> None:
    bomb = with_ihdr_size(encode("PNG", 1, 1), 10_000, 10_000)  # Pillow warns above ~89M
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        probe = probe_image(bomb, max_pixels=200_000_000)
    assert probe.problem is not None
    assert probe.problem.startswith("refused as a decompression bomb:")


def test_real_compressible_image_obeys_the_configured_limit() -> None:
    big = encode("PNG", 2000, 1500)  # 3M pixels of one colour: a few KB on disk
    assert len(big) < 50_000

    strict, _, _ = image_checks(max_pixels=1_000_000)
    refused = strict(subject(big))
    assert not refused.passed
    assert "above the limit of 1000000" in refused.message

    assert ImageDecodes(ImageProber(DEFAULT_MAX_PIXELS))(subject(big)).passed


def test_limit_is_inclusive() -> None:
    data = encode("PNG", 100, 100)
    assert probe_image(data, max_pixels=10_000).decoded
    assert not probe_image(data, max_pixels=9_999).decoded


def test_prober_rejects_non_positive_limits() -> None:
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        ImageProber(0)


def test_shared_prober_decodes_each_asset_once(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = Image.open

    def counting_open(*args: object, **kwargs: object) -> Image.Image:
        opened.append(1)
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", counting_open)
    checks = image_checks()
    first = subject(encode("PNG", 16, 16), format="png", width=16, height=16)
    second = subject(encode("PNG", 16, 16), format="png", width=16, height=16)

    assert all(check(first).passed for check in checks)
    assert len(opened) == 1
    assert all(check(second).passed for check in checks)  # equal bytes, but another asset
    assert len(opened) == 2


def test_image_checks_apply_to_images_only() -> None:
    for check in image_checks():
        assert check.kinds == frozenset({AssetKind.IMAGE})
    assert [c.code for c in image_checks()] == ["image.decodes", "image.format", "image.size"]


# --- image.animated (issue 12 item 12) ------------------------------------------------------


def animation(fmt: str, colors: tuple[str, ...] = ("red", "blue", "green")) -> bytes:
    frames = [Image.new("RGB", (16, 12), color) for color in colors]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], lossless=True)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_images_are_refused_unless_allowed(fmt: str) -> None:
    data = animation(fmt)
    prober = ImageProber()
    refused = ImageAnimation(prober)(subject(data))
    assert refused.code == "image.animated"
    assert not refused.passed
    assert refused.repairable
    assert refused.measured == "3"
    assert f"animated {fmt} with 3 frames" in refused.message
    assert ImageDecodes(prober)(subject(data)).passed  # it decodes: only the first frame
    allowed = ImageAnimation(prober, allow=True)(subject(data))
    assert allowed.passed
    too_many = ImageAnimation(prober, allow=True, max_frames=2)(subject(data))
    assert not too_many.passed
    assert "above the limit of 2" in too_many.message


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_still_images_pass_the_animation_check(fmt: str) -> None:
    result = ImageAnimation()(subject(encode(fmt, 8, 8)))
    assert result.passed
    assert result.measured == "1"
