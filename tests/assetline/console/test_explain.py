"""Failed checks read back for the detail page: palette swatches and term spans."""

from __future__ import annotations

from assetline.console.explain import explain, highlight
from schemas.records import CheckResult


def test_palette_message_gives_swatches() -> None:
    check = CheckResult(
        code="palette.brand",
        passed=False,
        message="only 12.0% of pixels within ΔE 10 of the brand palette (need 80.0%); "
        "off-palette: #aa2200 61.0% (nearest #ff0000, ΔE 23.4), "
        "#00FF00 27.0% (nearest #0000ff, ΔE 80.1)",
        measured="0.120",
    )
    swatches = explain(check).swatches
    assert [(s.color, s.share, s.nearest, s.delta_e) for s in swatches] == [
        ("#aa2200", "61.0", "#ff0000", "23.4"),
        ("#00ff00", "27.0", "#0000ff", "80.1"),
    ]


def test_term_hits_are_highlighted_where_they_were_found() -> None:
    text = "Get it FREE now, it's fr ee!"
    check = CheckResult(
        code="text.prohibited",
        passed=False,
        message="found 'free' as 'FREE' at char 7, 'free' as \"fr ee\" at char 22",
        measured="2",
    )
    hits = explain(check).hits
    assert [(h.term, h.excerpt, h.start) for h in hits] == [
        ("free", "FREE", 7),
        ("free", "fr ee", 22),
    ]
    assert highlight(text, hits) == [
        ("Get it ", False),
        ("FREE", True),
        (" now, it's ", False),
        ("fr ee", True),
        ("!", False),
    ]
