"""Which stages feed which: the warnings a worker prints when it runs only some of them."""

from __future__ import annotations

from agents.stage_graph import FEEDS, stages_help, unfed_warnings
from streams.settings import STAGES
from streams.topics import TopicNames

NAMES = TopicNames.with_prefix("p")


def test_every_stage_is_in_the_graph_and_the_help() -> None:
    assert set(FEEDS) == set(STAGES)
    assert all(set(targets) <= set(STAGES) for targets in FEEDS.values())
    assert ",".join(STAGES) in stages_help()


def test_all_stages_on_warns_nothing() -> None:
    assert unfed_warnings(STAGES, NAMES) == []


def test_the_old_readme_example_warns_that_review_and_notify_are_off() -> None:
    warnings = unfed_warnings(["generate", "validate", "deliver"], NAMES)
    assert warnings == [
        "warning: stage validate is on but review is off: what validate sends to p.review "
        "waits there until a worker runs review",
        "warning: stage deliver is on but notify is off: what deliver sends to p.webhooks "
        "waits there until a worker runs notify",
    ]


def test_one_line_per_missing_consumer() -> None:
    warnings = unfed_warnings(["validate"], NAMES)
    assert [w.split(" is on but ")[1].split(" ")[0] for w in warnings] == [
        "deliver",
        "review",
        "generate",
    ]
    assert unfed_warnings(["notify"], NAMES) == []
