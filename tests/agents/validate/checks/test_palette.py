"""Brand palette check: CIEDE2000 against published data, dominant colours, pass/fail margins."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from coloraide import Color
from PIL import Image, ImageFile
from pydantic import ValidationError

from agents.policy.rules import PalettePolicy
from agents.validate.checks import palette
from agents.validate.checks._base import Subject
from agents.validate.checks.image import ImageProber
from agents.validate.checks.palette import (
    BrandPalette,
    Lab,
    delta_e_2000,
    dominant_colors,
    hex_to_rgb,
    rgb_to_hex,
    srgb_to_lab,
)
from schemas.records import AssetKind, CheckResult, GenerationRequest

REQUEST = GenerationRequest(
    request_id="r-1",
    idempotency_key="k-1",
    tenant="acme",
    campaign_id="c-1",
    kind=AssetKind.IMAGE,
    prompt_template="a logo",
)
BRAND = "#3366cc"


def subject(data: bytes) -> Subject:
    return Subject(request=REQUEST, data=data, media_type="image/png")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def stripes(size: tuple[int, int], *rows: tuple[int, tuple[int, ...]]) -> Image.Image:
    """Horizontal bands: ``(row_count, colour)``, top to bottom; the colour fixes the mode."""
    mode = "RGBA" if any(len(color) == 4 for _, color in rows) else "RGB"
    image = Image.new(mode, size)
    top = 0
    for count, color in rows:
        image.paste(color, (0, top, size[0], top + count))
        top += count
    assert top == size[1]
    return image


def check(**fields: object) -> BrandPalette:
    return BrandPalette(PalettePolicy.model_validate({"colors": [BRAND], **fields}))


def judge(image: Image.Image, **fields: object) -> CheckResult:
    return check(**fields)(subject(png(image)))


# --- CIEDE2000: Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula:
# implementation notes, supplementary test data, and mathematical observations", Table 1.
SHARMA_2005: list[tuple[Lab, Lab, float]] = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"), SHARMA_2005, ids=[f"pair{i}" for i in range(1, 35)]
)
def test_ciede2000_matches_sharma_wu_dalal(lab1: Lab, lab2: Lab, expected: float) -> None:
    assert round(delta_e_2000(lab1, lab2), 4) == expected
    assert round(delta_e_2000(lab2, lab1), 4) == expected  # symmetric


def test_identical_colours_have_zero_difference() -> None:
    assert delta_e_2000((53.0, 80.0, 67.0), (53.0, 80.0, 67.0)) == 0.0


@pytest.mark.parametrize(
    ("rgb", "lab"),
    [
        ((255, 255, 255), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((255, 0, 0), (53.24, 80.09, 67.20)),  # sRGB red under D65
        ((0, 0, 255), (32.30, 79.19, -107.86)),
        ((128, 128, 128), (53.59, 0.0, 0.0)),
    ],
)
def test_srgb_to_lab_uses_d65(rgb: tuple[int, int, int], lab: Lab) -> None:
    assert srgb_to_lab(rgb) == pytest.approx(lab, abs=0.01)


def test_hex_round_trip() -> None:
    assert hex_to_rgb("#FF8800") == (255, 136, 0)
    assert rgb_to_hex((255, 136, 0)) == "#ff8800"
    with pytest.raises(ValueError, match="not a '#RRGGBB' colour"):
        hex_to_rgb("ff8800")


# --- the policy model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"colors": []},
        {"colors": ["#fff"]},
        {"colors": ["red"]},
        {"colors": ["#gg0000"]},
        {"colors": ["#3366cc "]},
        {"colors": [BRAND], "min_share": 1.5},
        {"colors": [BRAND], "min_share": -0.1},
        {"colors": [BRAND], "max_delta_e": -1},
        {"colors": [BRAND], "max_delta_e": float("nan")},
        {"colors": [BRAND], "quantize_colors": 0},
        {"colors": [BRAND], "sample_side": 0},
        {"colors": [BRAND], "colours": [BRAND]},
    ],
)
def test_bad_palette_policies_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PalettePolicy.model_validate(fields)


def test_policy_defaults_and_normalised_colours() -> None:
    policy = PalettePolicy(colors=["#3366CC", "#FFFFFF"])
    assert policy.colors == ["#3366cc", "#ffffff"]
    assert (policy.max_delta_e, policy.min_share, policy.quantize_colors) == (10.0, 0.8, 8)
    assert (policy.sample_side, policy.ignore_transparent) == (64, True)


# --- dominant colours ---------------------------------------------------------------------------


def test_dominant_colours_of_a_small_image_are_exact() -> None:
    image = stripes((64, 50), (40, (51, 102, 204)), (10, (250, 10, 10)))
    assert dominant_colors(image, 8, 64) == [((51, 102, 204), 0.8), ((250, 10, 10), 0.2)]


def test_dominant_colours_are_limited_to_n_and_shares_sum_to_one() -> None:
    image = stripes(
        (20, 50),
        *((10, (i * 50, 255 - i * 50, 100)) for i in range(5)),
    )
    colours = dominant_colors(image, 2, 64)
    assert len(colours) == 2
    assert sum(share for _, share in colours) == pytest.approx(1.0)
    assert colours[0][1] >= colours[1][1]


def test_large_images_are_sampled_down_but_keep_their_shares() -> None:
    image = stripes((512, 512), (384, (51, 102, 204)), (128, (250, 10, 10)))
    colours = dict(dominant_colors(image, 8, 64))
    assert set(colours) == {(51, 102, 204), (250, 10, 10)}
    assert colours[51, 102, 204] == pytest.approx(0.75, abs=0.02)


def test_sampling_never_mutates_the_shared_image() -> None:
    image = Image.effect_noise((200, 100), 50).convert("RGB")
    before = image.tobytes()
    dominant_colors(image, 4, 32)
    assert image.size == (200, 100)
    assert image.tobytes() == before


def test_transparent_pixels_are_left_out_when_asked() -> None:
    image = stripes((32, 40), (30, (250, 10, 10, 0)), (10, (51, 102, 204, 255)))
    assert dominant_colors(image, 8, 64) == [((51, 102, 204), 1.0)]
    counted = dict(dominant_colors(image, 8, 64, ignore_transparent=False))
    assert counted == {(250, 10, 10): 0.75, (51, 102, 204): 0.25}


def test_pixels_less_than_half_opaque_count_as_transparent() -> None:
    image = stripes((10, 20), (10, (250, 10, 10, 127)), (10, (51, 102, 204, 128)))
    assert dominant_colors(image, 8, 64) == [((51, 102, 204), 1.0)]


def test_fully_transparent_image_has_no_dominant_colours() -> None:
    assert dominant_colors(Image.new("RGBA", (8, 8), (1, 2, 3, 0)), 8, 64) == []


def test_palette_transparency_is_honoured() -> None:
    image = Image.new("P", (10, 10), 0)
    image.putpalette([51, 102, 204, 250, 10, 10])
    image.paste(1, (0, 0, 10, 5))
    image.info["transparency"] = 1
    assert dominant_colors(image, 8, 64) == [((51, 102, 204), 1.0)]


# --- the check ----------------------------------------------------------------------------------


def colour_at_delta_e(low: float, high: float) -> tuple[tuple[int, int, int], float]:
    """A colour whose ΔE 2000 from the brand colour lies in (low, high), found by walking red."""
    brand_lab = srgb_to_lab(hex_to_rgb(BRAND))
    for red in range(0x33, 256):
        rgb = (red, 0x66, 0xCC)
        distance = delta_e_2000(srgb_to_lab(rgb), brand_lab)
        if low < distance < high:
            return rgb, distance
    raise AssertionError(f"no colour at ΔE in ({low}, {high})")


def test_colour_just_inside_the_threshold_passes() -> None:
    rgb, distance = colour_at_delta_e(9.5, 10.0)
    result = judge(Image.new("RGB", (16, 16), rgb), max_delta_e=10.0)
    assert result.passed, result.message
    assert result.measured == "1.000"
    assert 9.5 < distance < 10.0


def test_colour_just_outside_the_threshold_fails_with_its_delta_e() -> None:
    rgb, distance = colour_at_delta_e(10.0, 10.5)
    result = judge(Image.new("RGB", (16, 16), rgb), max_delta_e=10.0)
    assert not result.passed
    assert result.repairable
    assert result.measured == "0.000"
    assert f"{rgb_to_hex(rgb)} 100.0% (nearest {BRAND}, ΔE {distance:.1f})" in result.message


def test_threshold_is_inclusive_and_exact() -> None:
    rgb, distance = colour_at_delta_e(5.0, 20.0)
    image = Image.new("RGB", (8, 8), rgb)
    assert judge(image, max_delta_e=distance).passed
    assert not judge(image, max_delta_e=distance - 1e-6).passed


def test_share_at_the_minimum_passes_and_below_fails_listing_offenders() -> None:
    brand, off = (0x33, 0x66, 0xCC), (255, 0, 255)
    off_delta = delta_e_2000(srgb_to_lab(off), srgb_to_lab(brand))

    at_minimum = judge(stripes((64, 50), (40, brand), (10, off)), min_share=0.8)
    assert at_minimum.passed
    assert at_minimum.measured == "0.800"
    assert at_minimum.message == ("80.0% of pixels within ΔE 10 of the brand palette (need 80.0%)")

    below = judge(stripes((64, 40), (30, brand), (10, off)), min_share=0.8)
    assert below.model_dump() == {
        "code": "palette.brand",
        "passed": False,
        "message": "only 75.0% of pixels within ΔE 10 of the brand palette (need 80.0%); "
        f"off-palette: #ff00ff 25.0% (nearest #3366cc, ΔE {off_delta:.1f})",
        "measured": "0.750",
        "repairable": True,
    }


def test_offenders_name_their_nearest_brand_colour() -> None:
    image = stripes((20, 30), (10, (0, 0, 0)), (10, (250, 250, 250)), (10, (240, 20, 20)))
    result = BrandPalette(PalettePolicy(colors=["#ffffff", "#000000"], max_delta_e=2))(
        subject(png(image))
    )
    assert not result.passed
    assert result.measured == "0.667"
    red = delta_e_2000(srgb_to_lab((240, 20, 20)), srgb_to_lab((0, 0, 0)))
    near_white = delta_e_2000(srgb_to_lab((240, 20, 20)), srgb_to_lab((255, 255, 255)))
    nearest = "#000000" if red < near_white else "#ffffff"
    assert result.message.endswith(
        f"off-palette: #f01414 33.3% (nearest {nearest}, ΔE {min(red, near_white):.1f})"
    )
    assert "#fafafa" not in result.message  # within ΔE 2 of white, so not an offender


def test_transparent_background_is_ignored_by_the_check() -> None:
    image = stripes((32, 40), (30, (255, 0, 255, 0)), (10, (0x33, 0x66, 0xCC, 255)))
    assert judge(image).passed
    counted = judge(image, ignore_transparent=False)
    assert not counted.passed
    assert counted.measured == "0.250"


def test_all_transparent_image_fails_repairably() -> None:
    result = judge(Image.new("RGBA", (8, 8), (0x33, 0x66, 0xCC, 0)))
    assert not result.passed
    assert result.repairable
    assert "all are transparent" in result.message


def test_noise_is_off_brand() -> None:
    result = judge(Image.effect_noise((512, 512), 90).convert("RGB"))
    assert not result.passed
    assert result.measured is not None
    assert float(result.measured) < 0.5


def with_ihdr_size(data: bytes, width: int, height: int) -> bytes:
    fields = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + fields + struct.pack(">I", zlib.crc32(b"IHDR" + fields)) + data[33:]


def test_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    bomb = with_ihdr_size(png(Image.new("RGB", (1, 1), (0x33, 0x66, 0xCC))), 8000, 8000)

    result = check()(subject(bomb))

    assert not result.passed
    assert result.repairable
    assert result.message == (
        "image did not decode, see image.decodes: 8000x8000 is 64000000 pixels, above the limit "
        "of 40000000 (decompression bomb guard); not decoded"
    )


def test_probers_own_limit_applies() -> None:
    policy = PalettePolicy(colors=[BRAND])
    image = png(Image.new("RGB", (64, 64), (0x33, 0x66, 0xCC)))
    assert BrandPalette(policy, ImageProber(max_pixels=4096))(subject(image)).passed
    refused = BrandPalette(policy, ImageProber(max_pixels=4095))(subject(image))
    assert not refused.passed
    assert "above the limit of 4095" in refused.message


def test_undecodable_bytes_fail_repairably() -> None:
    data = png(Image.effect_noise((64, 64), 60).convert("RGB"))
    result = check()(subject(data[: len(data) // 2]))
    assert not result.passed
    assert result.repairable
    assert result.message.startswith("image did not decode, see image.decodes: does not decode")


def test_unusable_policy_is_not_repairable() -> None:
    broken = BrandPalette(PalettePolicy.model_construct(colors=["blue"], max_delta_e=10.0))
    result = broken(subject(png(Image.new("RGB", (4, 4)))))
    assert not result.passed
    assert not result.repairable
    assert result.message == "unusable palette policy: 'blue' is not a '#RRGGBB' colour"


def test_brand_lab_is_computed_once_per_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int, int]] = []
    real = palette.srgb_to_lab

    def counting(rgb: tuple[int, int, int]) -> Lab:
        calls.append(rgb)
        return real(rgb)

    monkeypatch.setattr(palette, "srgb_to_lab", counting)
    brand = BrandPalette(PalettePolicy(colors=["#3366cc", "#ffffff", "#000000"]))
    assert len(calls) == 3
    s = subject(png(Image.new("RGB", (8, 8), (0x33, 0x66, 0xCC))))
    assert brand(s).passed
    assert brand(s).passed
    assert calls[3:] == [(0x33, 0x66, 0xCC)] * 2  # only the dominant colour, once per call


def test_check_identity() -> None:
    brand = check()
    assert brand.code == "palette.brand"
    assert brand.kinds == frozenset({AssetKind.IMAGE})


def coloraide_2000(lab1: Lab, lab2: Lab) -> float:
    return Color("lab-d65", list(lab1)).delta_e(Color("lab-d65", list(lab2)), method="2000")


def test_ciede2000_agrees_with_coloraide_on_random_colours() -> None:
    """Our float formula against the library's own, well away from the published pairs."""
    rng = random.Random(2000)
    for _ in range(2_000):
        lab1 = (rng.uniform(0, 100), rng.uniform(-128, 127), rng.uniform(-128, 127))
        lab2 = (rng.uniform(0, 100), rng.uniform(-128, 127), rng.uniform(-128, 127))
        assert delta_e_2000(lab1, lab2) == pytest.approx(coloraide_2000(lab1, lab2), abs=1e-9)


@pytest.mark.parametrize(
    ("lab1", "lab2"),
    [((50, 0, 0), (60, 0, 0)), ((50, 0, 0), (50, 10, -10)), ((0, 0, 0), (100, 0, 0))],
)
def test_ciede2000_achromatic_branches_agree_with_coloraide(lab1: Lab, lab2: Lab) -> None:
    assert delta_e_2000(lab1, lab2) == pytest.approx(coloraide_2000(lab1, lab2), abs=1e-9)


# --- animations: every frame counts (issue 12 item 12) ---------------------------------------


def animated(fmt: str, *colors: tuple[int, int, int]) -> bytes:
    frames = [Image.new("RGB", (16, 16), color) for color in colors]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], lossless=True)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_off_brand_later_frame_fails_the_animation(fmt: str) -> None:
    on_brand, near = (0x33, 0x66, 0xCC), (0x36, 0x66, 0xCC)  # WebP merges equal frames
    data = animated(fmt, on_brand, near, (255, 0, 0))
    result = check()(subject(data))
    assert not result.passed
    assert result.repairable
    assert result.message.startswith("frame 3 of 3 (the worst): only 0.0%")
    assert result.measured == "0.000"
    assert check()(subject(animated(fmt, on_brand, near))).passed


def test_too_many_frames_to_check_is_a_failure() -> None:
    data = animated("PNG", *[(0x33, 0x66, 0xCC)] * 3)
    result = BrandPalette(PalettePolicy(colors=[BRAND]), ImageProber(max_pixels=600))(subject(data))
    assert not result.passed
    assert "too many to check" in result.message
