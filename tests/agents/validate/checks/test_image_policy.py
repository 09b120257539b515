"""Image policy checks on real images made with Pillow: sizes, ratios, modes, bytes, alpha."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile
from pydantic import ValidationError

from agents.policy.rules import ImagePolicy, parse_aspect_ratio
from agents.validate.checks._base import Subject
from agents.validate.checks.image import ImageProber, alpha_extrema, probe_image, to_rgba
from agents.validate.checks.image_policy import (
    ImageAspectRatio,
    ImageColorMode,
    ImageDimensions,
    ImageFormats,
    ImageMaxBytes,
    ImageTransparency,
    image_policy_checks,
)
from schemas.records import AssetKind, CheckResult, GenerationRequest

REQUEST = GenerationRequest(
    request_id="r-1",
    idempotency_key="k-1",
    tenant="acme",
    campaign_id="c-1",
    kind=AssetKind.IMAGE,
    prompt_template="a cat",
)


def subject(data: bytes) -> Subject:
    return Subject(request=REQUEST, data=data, media_type="image/png")


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def solid(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    color: object = {"RGB": (20, 90, 200), "RGBA": (20, 90, 200, 255), "L": 90, "P": 3}[mode]
    return encode(Image.new(mode, (width, height), color), fmt)  # type: ignore[arg-type]


def noise_png(side: int) -> bytes:
    return encode(Image.effect_noise((side, side), 64).convert("RGB"))


def with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size, with a valid IHDR CRC."""
    fields = struct.pack(">II", width, height) + png[24:29]
    return png[:16] + fields + struct.pack(">I", zlib.crc32(b"IHDR" + fields)) + png[33:]


def run(check: object, data: bytes) -> CheckResult:
    assert callable(check)
    result = check(subject(data))
    assert isinstance(result, CheckResult)
    return result


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --- the policy model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16:9", 16 / 9), ("1.91", 1.91), (" 4 : 3 ", 4 / 3), ("1.91:1", 1.91), ("1:1", 1.0)],
)
def test_aspect_ratio_spellings(text: str, expected: float) -> None:
    assert parse_aspect_ratio(text) == pytest.approx(expected)
    assert ImagePolicy(aspect_ratio=text).aspect_value == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "16:0", "0", "-1.5", "16:9:1", "inf", "1e3", "16/9"])
def test_bad_aspect_ratios_are_refused_at_load(text: str) -> None:
    with pytest.raises(ValidationError, match="aspect_ratio"):
        ImagePolicy(aspect_ratio=text)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"min_width": 800, "max_width": 600}, "min_width 800 is above max_width 600"),
        ({"min_height": 10, "max_height": 9}, "min_height 10 is above max_height 9"),
        ({"width": 500, "min_width": 600}, "width 500 is outside min_width/max_width"),
        ({"height": 700, "max_height": 600}, "height 700 is outside min_height/max_height"),
        ({"width": 640, "height": 480, "aspect_ratio": "16:9"}, "contradicts aspect_ratio"),
        ({"formats": ["jpeg"], "transparency": "require"}, "JPEG"),
        ({"color_modes": ["RGB", "XYZ"]}, "'XYZ' is not a Pillow image mode"),
        ({"formats": ["gif"]}, "formats"),
        ({"formats": []}, "formats"),
        ({"color_modes": []}, "color_modes"),
        ({"width": 0}, "width"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"aspect_tolerance": -0.1}, "aspect_tolerance"),
        ({"transparency": "maybe"}, "transparency"),
        ({"colour_modes": ["RGB"]}, "colour_modes"),
    ],
)
def test_unsatisfiable_or_malformed_policies_are_refused(
    fields: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        ImagePolicy.model_validate(fields)
    assert fragment in str(caught.value)


def test_consistent_policy_loads_and_is_frozen() -> None:
    policy = ImagePolicy(
        width=1920, height=1080, min_width=1000, aspect_ratio="16:9", formats=["png"]
    )
    assert policy.aspect_value == pytest.approx(16 / 9)
    with pytest.raises(ValidationError):
        policy.width = 10  # type: ignore[misc]


def test_only_the_rules_that_are_set_become_checks() -> None:
    prober = ImageProber()
    assert image_policy_checks(ImagePolicy(), prober) == ()
    assert [c.code for c in image_policy_checks(ImagePolicy(max_bytes=10), prober)] == [
        "image.max_bytes"
    ]
    assert [c.code for c in image_policy_checks(ImagePolicy(max_height=10), prober)] == [
        "image.dimensions"
    ]
    full = ImagePolicy(
        formats=["png"],
        min_width=1,
        aspect_ratio="1:1",
        max_bytes=10,
        color_modes=["RGB"],
        transparency="forbid",
    )
    checks = image_policy_checks(full, prober)
    assert [c.code for c in checks] == [
        "image.formats",
        "image.dimensions",
        "image.aspect_ratio",
        "image.max_bytes",
        "image.color_mode",
        "image.transparency",
    ]
    assert all(c.kinds == frozenset({AssetKind.IMAGE}) for c in checks)
    assert all(getattr(c, "prober", prober) is prober for c in checks)


# --- the probe now carries mode and pixels -----------------------------------------------------


def test_probe_keeps_mode_and_the_decoded_image() -> None:
    probe = probe_image(solid(8, 4, "RGBA"))
    assert probe.mode == "RGBA"
    assert probe.image is not None
    assert probe.image.size == (8, 4)
    assert probe.image.getpixel((0, 0)) == (20, 90, 200, 255)  # not closed after decoding
    assert probe_image(solid(8, 4, "P")).mode == "P"
    assert "image" not in repr(probe)


def test_probe_of_a_broken_image_keeps_the_header_mode_but_no_pixels() -> None:
    data = noise_png(64)
    probe = probe_image(data[: len(data) // 2])
    assert not probe.decoded
    assert probe.mode == "RGB"
    assert probe.image is None


# --- image.formats ------------------------------------------------------------------------------


def test_format_outside_the_allowed_list_fails_repairably() -> None:
    result = run(ImageFormats(ImagePolicy(formats=["png", "webp"])), solid(8, 8, fmt="JPEG"))
    assert result.model_dump() == {
        "code": "image.formats",
        "passed": False,
        "message": "format JPEG is not allowed; use PNG, WEBP",
        "measured": "JPEG",
        "repairable": True,
    }


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_allowed_formats_pass(fmt: str) -> None:
    result = run(ImageFormats(ImagePolicy(formats=["png", "jpeg", "webp"])), solid(8, 8, fmt=fmt))
    assert result.passed
    assert not result.repairable
    assert result.measured == fmt


# --- image.dimensions ---------------------------------------------------------------------------


def test_every_dimension_violation_is_reported() -> None:
    policy = ImagePolicy(width=512, min_height=100, max_height=200)
    result = run(ImageDimensions(policy), solid(500, 300))
    assert not result.passed
    assert result.repairable
    assert result.measured == "500x300"
    assert result.message == "width 500 != 512; height 300 > max_height 200"


def test_minimum_dimensions() -> None:
    policy = ImagePolicy(min_width=64, min_height=64)
    result = run(ImageDimensions(policy), solid(63, 80))
    assert not result.passed
    assert result.message == "width 63 < min_width 64"
    assert run(ImageDimensions(policy), solid(64, 64)).passed  # bounds are inclusive


def test_dimensions_within_bounds_pass() -> None:
    policy = ImagePolicy(min_width=10, max_width=100, height=40)
    result = run(ImageDimensions(policy), solid(100, 40))
    assert result.passed
    assert result.message == "100x40: dimensions within policy"


# --- image.aspect_ratio -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "ratio", "tolerance", "passed"),
    [
        ((160, 90), "16:9", 0.01, True),
        ((192, 109), "16:9", 0.01, True),  # 0.92% off
        ((192, 109), "16:9", 0.005, False),
        ((120, 90), "16:9", 0.01, False),  # 4:3 is 25% off
        ((191, 100), "1.91", 0.0, True),
        ((100, 100), "1:1", 0.01, True),
        ((100, 102), "1:1", 0.01, False),  # 1.96% off
    ],
)
def test_aspect_ratio_with_relative_tolerance(
    size: tuple[int, int], ratio: str, tolerance: float, passed: bool
) -> None:
    policy = ImagePolicy(aspect_ratio=ratio, aspect_tolerance=tolerance)
    result = run(ImageAspectRatio(policy), solid(*size))
    assert result.passed is passed, result.message
    assert result.repairable is not passed
    assert result.measured == f"{size[0] / size[1]:.4f}"


def test_aspect_ratio_failure_message() -> None:
    result = run(ImageAspectRatio(ImagePolicy(aspect_ratio="16:9")), solid(120, 90))
    assert result.message == (
        "aspect ratio 1.3333 (120x90) is 25.00% off 16:9 (1.7778), above the tolerance of 1.00%"
    )


def test_unusable_aspect_ratio_is_not_repairable() -> None:
    policy = ImagePolicy.model_construct(aspect_ratio="wide", aspect_tolerance=0.01)
    result = run(ImageAspectRatio(policy), solid(16, 9))
    assert not result.passed
    assert not result.repairable
    assert result.message.startswith("unusable policy: aspect_ratio 'wide'")


# --- image.max_bytes ----------------------------------------------------------------------------


def test_max_bytes_is_measured_on_the_raw_bytes() -> None:
    data = noise_png(64)
    result = run(ImageMaxBytes(ImagePolicy(max_bytes=len(data) - 1)), data)
    assert not result.passed
    assert result.repairable
    assert result.measured == str(len(data))
    assert result.message == f"{len(data)} bytes exceeds max_bytes {len(data) - 1} by 1"
    assert run(ImageMaxBytes(ImagePolicy(max_bytes=len(data))), data).passed  # inclusive


def test_max_bytes_needs_no_decoding(no_decoding: None) -> None:
    assert run(ImageMaxBytes(ImagePolicy(max_bytes=4)), b"12345").measured == "5"
    assert not run(ImageMaxBytes(ImagePolicy(max_bytes=4)), b"12345").passed
    assert run(ImageMaxBytes(ImagePolicy(max_bytes=5)), solid(1, 1)[:5]).passed


# --- image.color_mode ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "passed"), [("RGB", True), ("RGBA", True), ("L", False), ("P", False)]
)
def test_color_modes(mode: str, passed: bool) -> None:
    result = run(ImageColorMode(ImagePolicy(color_modes=["RGB", "RGBA"])), solid(4, 4, mode))
    assert result.passed is passed
    assert result.measured == mode
    if not passed:
        assert result.message == f"mode {mode} is not allowed; use RGB, RGBA"
        assert result.repairable


def test_jpeg_of_grey_pixels_decodes_as_l() -> None:
    result = run(ImageColorMode(ImagePolicy(color_modes=["RGB"])), solid(8, 8, "L", "JPEG"))
    assert not result.passed
    assert result.measured == "L"


# --- image.transparency -------------------------------------------------------------------------


def rgba_with(alpha_at_corner: int) -> bytes:
    image = Image.new("RGBA", (8, 8), (10, 20, 30, 255))
    image.putpixel((7, 7), (10, 20, 30, alpha_at_corner))
    return encode(image)


def palette_png(*, transparent_index_used: bool) -> bytes:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    if transparent_index_used:
        image.putpixel((0, 0), 2)
    return encode(image, transparency=bytes([255, 255, 0]))  # index 2 is fully transparent


def keyed_rgb_png(*, key_present: bool) -> bytes:
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    if key_present:
        image.putpixel((1, 1), (9, 9, 9))
    return encode(image, transparency=(9, 9, 9))


def wide_grey_png(*, key_present: bool) -> bytes:
    image = Image.new("I;16", (4, 4), 1000)
    if key_present:
        image.putpixel((2, 2), 4242)
    return encode(image, transparency=4242)


def la_png(alpha: int) -> bytes:
    return encode(Image.new("LA", (4, 4), (128, alpha)))


@pytest.mark.parametrize(
    ("data", "transparent"),
    [
        (rgba_with(255), False),
        (rgba_with(254), True),
        (rgba_with(0), True),
        (solid(4, 4, "RGB"), False),
        (solid(4, 4, "L", "JPEG"), False),
        (palette_png(transparent_index_used=False), False),
        (palette_png(transparent_index_used=True), True),
        (keyed_rgb_png(key_present=False), False),
        (keyed_rgb_png(key_present=True), True),
        (wide_grey_png(key_present=False), False),
        (wide_grey_png(key_present=True), True),
        (la_png(255), False),
        (la_png(100), True),
        (encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "WEBP", lossless=True), True),
    ],
    ids=[
        "rgba-opaque",
        "rgba-254",
        "rgba-0",
        "rgb",
        "jpeg-l",
        "p-trns-unused",
        "p-trns-used",
        "rgb-key-absent",
        "rgb-key-present",
        "i16-key-absent",
        "i16-key-present",
        "la-opaque",
        "la-100",
        "webp-clear",
    ],
)
def test_forbid_and_require_see_every_kind_of_transparency(data: bytes, transparent: bool) -> None:
    forbid = run(ImageTransparency(ImagePolicy(transparency="forbid")), data)
    require = run(ImageTransparency(ImagePolicy(transparency="require")), data)
    assert forbid.passed is not transparent, forbid.message
    assert require.passed is transparent, require.message
    assert forbid.repairable is transparent
    assert require.repairable is not transparent


def test_transparency_messages() -> None:
    forbid = run(ImageTransparency(ImagePolicy(transparency="forbid")), rgba_with(17))
    assert forbid.message == "transparency is forbidden, but some pixels have alpha down to 17"
    assert forbid.measured == "min alpha 17"

    require = ImageTransparency(ImagePolicy(transparency="require"))
    no_alpha = run(require, solid(4, 4))
    assert no_alpha.message == (
        "transparency is required, but the RGB image has no alpha channel or transparency key"
    )
    assert no_alpha.measured == "min alpha 255"
    opaque = run(require, rgba_with(255))
    assert opaque.message == "transparency is required, but every pixel of the RGBA image is opaque"


def test_allow_passes_anything_decoded() -> None:
    result = run(ImageTransparency(ImagePolicy()), rgba_with(0))
    assert result.passed
    assert result.message == "transparency allowed"


def test_alpha_extrema_of_in_memory_modes() -> None:
    assert alpha_extrema(Image.new("RGB", (2, 2))) is None
    assert alpha_extrema(Image.new("PA", (2, 2), (0, 77))) == (77, 77)
    assert alpha_extrema(Image.new("RGBA", (2, 2), (0, 0, 0, 5))) == (5, 5)


def test_wide_grey_is_scaled_not_clipped() -> None:
    probe = probe_image(wide_grey_png(key_present=False))
    assert probe.mode is not None
    assert probe.mode.startswith("I")
    assert probe.image is not None
    assert to_rgba(probe.image).getpixel((0, 0)) == (4, 4, 4, 255)  # 1000 / 257, rounded


# --- undecodable images and bombs ---------------------------------------------------------------

ALL_RULES = ImagePolicy(
    formats=["png"],
    min_width=1,
    aspect_ratio="1:1",
    max_bytes=1_000_000,
    color_modes=["RGB"],
    transparency="forbid",
)


def test_broken_image_fails_every_pixel_rule_pointing_at_image_decodes() -> None:
    data = noise_png(64)
    truncated = data[: len(data) // 2]
    results = {c.code: c(subject(truncated)) for c in image_policy_checks(ALL_RULES, ImageProber())}

    size = results.pop("image.max_bytes")
    assert size.passed  # judged on the bytes alone
    for code, result in results.items():
        assert not result.passed, code
        assert result.repairable, code
        assert result.message.startswith("image did not decode, see image.decodes: "), code
        assert "truncated" in result.message, code


def test_bomb_is_refused_before_any_pixel_is_decoded(
    no_decoding: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # our guard must not depend on Pillow's
    bomb = with_ihdr_size(solid(1, 1), 8000, 8000)  # 64M pixels claimed, limit 40M
    results = [c(subject(bomb)) for c in image_policy_checks(ALL_RULES, ImageProber())]

    failed = [r for r in results if not r.passed]
    assert [r.code for r in failed] == [
        "image.formats",
        "image.dimensions",
        "image.aspect_ratio",
        "image.color_mode",
        "image.transparency",
    ]
    for result in failed:
        assert "decompression bomb guard" in result.message
        assert result.message.startswith("image did not decode, see image.decodes")
        assert result.repairable


def test_policy_checks_share_one_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_open = Image.open

    def counting_open(*args: object, **kwargs: object) -> Image.Image:
        opened.append(1)
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", counting_open)
    checks = image_policy_checks(ALL_RULES, ImageProber())
    s = subject(solid(32, 32))
    assert [c(s).passed for c in checks] == [True] * 6
    assert len(opened) == 1
