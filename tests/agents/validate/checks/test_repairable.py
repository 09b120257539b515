"""Which failures a re-generation may fix: the flag that decides retry vs. a person."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from agents.validate.checks import (
    CodeSyntax,
    ImageDecodes,
    ImageFormat,
    ImageProber,
    ImageSize,
    JsonParses,
    JsonSchema,
    Subject,
    TextMaxChars,
    TextNotEmpty,
)
from schemas.records import AssetKind, CheckResult, Constraints, GenerationRequest


def subject(kind: AssetKind, data: bytes, **constraints: object) -> Subject:
    request = GenerationRequest(
        request_id="r",
        idempotency_key="k",
        tenant="t",
        campaign_id="c",
        kind=kind,
        prompt_template="p",
        constraints=Constraints.model_validate(constraints),
    )
    return Subject(request=request, data=data, media_type="application/octet-stream")


def png(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


SCHEMA = '{"type": "object", "required": ["title"]}'

CASES: list[tuple[str, CheckResult, bool]] = [
    ("garbage image", ImageDecodes(ImageProber())(subject(AssetKind.IMAGE, b"nope")), True),
    (
        "bomb",
        ImageDecodes(ImageProber(max_pixels=10))(subject(AssetKind.IMAGE, png())),
        True,
    ),
    ("wrong format", ImageFormat()(subject(AssetKind.IMAGE, png(), format="jpeg")), True),
    (
        "unsupported format constraint",
        ImageFormat()(subject(AssetKind.IMAGE, png(), format="tiff")),
        False,
    ),
    ("wrong size", ImageSize()(subject(AssetKind.IMAGE, png(), width=16)), True),
    ("blank text", TextNotEmpty()(subject(AssetKind.TEXT, b"   ")), True),
    ("too long", TextMaxChars()(subject(AssetKind.TEXT, b"abcdef", max_chars=3)), True),
    ("invalid JSON", JsonParses()(subject(AssetKind.JSON, b"{nope")), True),
    ("schema violation", JsonSchema()(subject(AssetKind.JSON, b"{}", json_schema=SCHEMA)), True),
    (
        "broken schema in the request",
        JsonSchema()(subject(AssetKind.JSON, b"{}", json_schema='{"type": 5}')),
        False,
    ),
    (
        "syntax error",
        CodeSyntax()(subject(AssetKind.CODE, b"def f(:\n", language="python")),
        True,
    ),
]


@pytest.mark.parametrize(("case", "result", "repairable"), CASES, ids=[c[0] for c in CASES])
def test_failures_say_whether_a_new_generation_can_fix_them(
    case: str, result: CheckResult, repairable: bool
) -> None:
    assert not result.passed, case
    assert result.repairable is repairable


def test_passing_results_are_never_marked_repairable() -> None:
    results = [
        ImageSize()(subject(AssetKind.IMAGE, png(), width=8)),
        ImageFormat()(subject(AssetKind.IMAGE, png(), format="png")),
        TextMaxChars()(subject(AssetKind.TEXT, b"ok", max_chars=3)),
        JsonSchema()(subject(AssetKind.JSON, b'{"title": "x"}', json_schema=SCHEMA)),
    ]
    assert all(r.passed and not r.repairable for r in results)
