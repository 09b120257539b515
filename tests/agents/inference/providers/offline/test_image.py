"""The offline image renderer: real, decodable pictures that depend only on their inputs."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline.image import normalize_format, render_image

PROMPT = "Summer sale for ${persona}: 30% off trail shoes"
VARIABLES = {"persona": "trail runners", "locale": "de-DE"}


def _render(
    fmt: str = "png",
    width: int = 512,
    height: int = 512,
    seed: int = 12345,
    variables: dict[str, str] | None = None,
    prompt: str = PROMPT,
) -> bytes:
    chosen = VARIABLES if variables is None else variables
    return render_image(prompt, chosen, width, height, fmt, seed)


@pytest.mark.parametrize(
    ("fmt", "pil_format"),
    [
        ("png", "PNG"),
        ("PNG", "PNG"),
        ("jpeg", "JPEG"),
        ("jpg", "JPEG"),
        ("JPG", "JPEG"),
        ("webp", "WEBP"),
        (" WebP ", "WEBP"),
    ],
)
def test_decodes_in_the_requested_format(fmt: str, pil_format: str) -> None:
    image = Image.open(io.BytesIO(_render(fmt)))
    assert image.format == pil_format
    assert image.size == (512, 512)
    image.load()  # fully decodes, not just the header


@pytest.mark.parametrize(
    ("width", "height"), [(512, 512), (640, 360), (360, 640), (1, 1), (17, 900), (2048, 64)]
)
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_has_the_requested_size(fmt: str, width: int, height: int) -> None:
    image = Image.open(io.BytesIO(_render(fmt, width, height)))
    image.load()
    assert image.size == (width, height)


def test_is_a_picture_not_a_flat_fill() -> None:
    image = Image.open(io.BytesIO(_render())).convert("RGB")
    colours = image.getcolors(maxcolors=512 * 512)
    assert colours is not None
    assert len(colours) > 50  # gradient + shapes + antialiased text


def test_palette_text_is_antialiased() -> None:
    """Text pixels between panel and ink use the in-between ramp entries, not just the two ends."""
    image = Image.open(io.BytesIO(_render()))
    assert image.mode == "P"
    panel = image.crop((40, 350, 470, 480))
    indices = set(panel.tobytes())
    headline_ramp = set(range(201, 215))  # strictly between headline ink (200) and panel (215)
    assert len(indices & headline_ramp) >= 5


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_same_input_gives_identical_bytes(fmt: str) -> None:
    assert _render(fmt) == _render(fmt)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_different_persona_gives_different_bytes(fmt: str) -> None:
    other = {**VARIABLES, "persona": "busy parents"}
    assert _render(fmt) != _render(fmt, variables=other)


def test_different_seed_gives_different_bytes() -> None:
    assert _render(seed=1) != _render(seed=2)


def test_headline_variable_and_missing_placeholders_render() -> None:
    variables = {"headline": "Big news", "persona": "runners"}
    data = _render(prompt="Ad for ${unknown_name}", variables=variables)
    assert Image.open(io.BytesIO(data)).size == (512, 512)
    assert data != _render(prompt="Ad for ${unknown_name}", variables={"persona": "runners"})


def test_long_unbreakable_text_still_renders() -> None:
    variables = {"headline": "X" * 500, "persona": "p" * 300, "locale": "de-DE"}
    data = _render(width=200, height=120, variables=variables)
    assert Image.open(io.BytesIO(data)).size == (200, 120)


def test_concurrent_renders_match_serial_ones() -> None:
    """Rendering runs in worker threads, so it must not share mutable state (e.g. fonts)."""
    seeds = list(range(16))
    serial = [_render(seed=seed) for seed in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda seed: _render(seed=seed), seeds))
    assert parallel == serial


@pytest.mark.parametrize("fmt", ["gif", "bmp", "", "pngx"])
def test_unknown_format_is_a_bad_constraint(fmt: str) -> None:
    with pytest.raises(ProviderError) as caught:
        _render(fmt)
    assert caught.value.code == "provider.bad_constraints"


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (-1, 5)])
def test_non_positive_size_is_a_bad_constraint(width: int, height: int) -> None:
    with pytest.raises(ProviderError) as caught:
        _render(width=width, height=height)
    assert caught.value.code == "provider.bad_constraints"


def test_normalize_format() -> None:
    assert normalize_format(None) == "png"
    assert normalize_format("JPG") == "jpeg"
    assert normalize_format("webp") == "webp"
