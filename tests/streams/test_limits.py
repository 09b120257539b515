"""Asset caps per kind (issue 12 #4): one object, built from the settings."""

from __future__ import annotations

import pytest

from schemas.records import AssetKind
from streams.limits import ASSET_TOO_LARGE, AssetLimits
from streams.settings import Settings


def test_defaults_match_the_settings() -> None:
    assert AssetLimits.from_settings(Settings()) == AssetLimits()
    assert AssetLimits().for_kind(AssetKind.JSON) == 2 * 1024 * 1024
    assert ASSET_TOO_LARGE == "asset.too_large"


def test_each_kind_has_its_own_cap() -> None:
    settings = Settings(max_text_bytes=1, max_json_bytes=2, max_code_bytes=3, max_image_bytes=4)
    limits = AssetLimits.from_settings(settings)
    caps = {kind: limits.for_kind(kind) for kind in AssetKind}
    assert caps == {AssetKind.TEXT: 1, AssetKind.JSON: 2, AssetKind.CODE: 3, AssetKind.IMAGE: 4}


def test_refusal_says_why_only_over_the_cap() -> None:
    limits = AssetLimits(image=100)
    assert limits.refusal(AssetKind.IMAGE, 100) is None
    assert limits.refusal(AssetKind.IMAGE, 101) == (
        "IMAGE asset of 101 bytes exceeds the cap of 100 bytes"
    )


def test_a_request_limit_that_leaves_no_room_for_its_records_is_refused() -> None:
    """A request travels whole inside the raw and validated records (issue 12 #2)."""
    with pytest.raises(ValueError, match="max_request_bytes"):
        Settings(max_request_bytes=600_000, max_message_bytes=1_000_000)
    assert Settings(max_request_bytes=500_000, max_message_bytes=1_000_000)


@pytest.mark.parametrize(
    ("width", "height", "refused"),
    [
        (None, None, False),
        (1, 1, False),
        (8192, 4882, False),  # 39,993,344 pixels: just under the cap
        (512, None, False),
        (2147483647, -7, True),  # issue 12 #10
        (0, 512, True),
        (None, -1, True),
        (8193, 1, True),
        (8192, 8192, True),  # both sides allowed, the product is not
    ],
)
def test_image_size_refusal(width: int | None, height: int | None, refused: bool) -> None:
    limits = AssetLimits(image_pixels=40_000_000, image_side=8192)
    assert (limits.image_size_refusal(width, height) is not None) is refused


def test_image_limits_come_from_the_settings() -> None:
    limits = AssetLimits.from_settings(Settings(max_image_pixels=100, max_image_side=20))
    assert (limits.image_pixels, limits.image_side) == (100, 20)
    assert limits.image_size_refusal(10, 10) is None
    assert limits.image_size_refusal(11, 10) is not None
    assert limits.image_size_refusal(21, 1) is not None
