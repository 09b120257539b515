"""The stage registry knows exactly the stages settings accept, in the order the line runs them."""

from __future__ import annotations

from agents.stages import INSTALLERS, installers_for
from streams.settings import STAGES


def test_installers_match_the_stage_names_in_order() -> None:
    assert list(INSTALLERS) == list(STAGES)


def test_installers_for_keeps_the_order_asked() -> None:
    assert installers_for(["notify", "generate"]) == [INSTALLERS["notify"], INSTALLERS["generate"]]
