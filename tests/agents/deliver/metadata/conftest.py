"""Shared fixtures: a provenance with hostile values, and real images made with Pillow."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from agents.deliver.metadata import Provenance

HOSTILE_COPYRIGHT = "© 2026 <ACME> & \"Söhne\" 'Ltd'"
HOSTILE_CREATOR = "Zoë <studio> & co"


@pytest.fixture
def provenance() -> Provenance:
    return Provenance(
        copyright=HOSTILE_COPYRIGHT,
        creator=HOSTILE_CREATOR,
        campaign_id="spring-sale",
        request_id="req-42",
        tenant="acme",
        provider="offline",
        model_version="offline-1.0",
        prompt_sha256="a" * 64,
        generated_at="2026-03-01T12:00:00.000Z",
        verdict="PASS",
        attempt=2,
        metadata=(("channel", "social & <web>"), ("locale", "de-DE")),
    )


@pytest.fixture
def other_provenance(provenance: Provenance) -> Provenance:
    """Same asset, every value we write changed: a re-stamp must leave none of the old ones."""
    return Provenance(
        copyright="(c) Other",
        creator="Other Creator",
        campaign_id="autumn",
        request_id="req-43",
        tenant="globex",
        provider="openai",
        model_version="gpt-image-1",
        prompt_sha256="b" * 64,
        generated_at="2026-04-01T00:00:00.000Z",
        verdict="FAIL; approved by bob",
        attempt=3,
    )


def _noise(mode: str, size: tuple[int, int] = (96, 64), seed: int = 7) -> Image.Image:
    bands = len(mode)
    data = random.Random(seed).randbytes(size[0] * size[1] * bands)
    return Image.frombytes(mode, size, data)


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Encode a noise image (the worst case for encoders) in the given format."""

    def make(fmt: str, mode: str = "RGB", **params: Any) -> bytes:
        out = io.BytesIO()
        _noise(mode).save(out, fmt, **params)
        return out.getvalue()

    return make


@pytest.fixture
def decode() -> Callable[[bytes], tuple[str, tuple[int, int], bytes]]:
    def run(data: bytes) -> tuple[str, tuple[int, int], bytes]:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.mode, im.size, im.tobytes()

    return run


@pytest.fixture
def pyexiv2() -> ModuleType:
    """An independent (C++ exiv2) reader; skipped, with the reason, when it cannot load."""
    module: ModuleType = pytest.importorskip(
        "pyexiv2", reason="pyexiv2 (exiv2 bindings) is not importable; `pip install pyexiv2`"
    )
    return module
