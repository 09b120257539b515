"""Which stage feeds which: a worker told to run only some stages says what will pile up.

Stages are split across workers on purpose (say, generate on GPU hosts), so a stage that is
off here is not an error; but a newcomer who copies ``--stages generate,validate,deliver``
silently loses review and notify. The warnings name the topic where the work will wait.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.settings import STAGES
from streams.topics import TopicNames

#: stage -> {stage it feeds: the TopicNames field it feeds it through}.
FEEDS: dict[str, dict[str, str]] = {
    "generate": {"validate": "raw"},
    "validate": {"deliver": "approved", "review": "review", "generate": "requests"},
    "review": {"deliver": "approved"},
    "deliver": {"notify": "webhooks"},
    "notify": {},
}


def stages_help() -> str:
    """The ``--stages`` help text, from the one list of stage names."""
    return f"Comma-separated subset of {','.join(STAGES)} (default: all)."


def unfed_warnings(stages: Iterable[str], names: TopicNames) -> list[str]:
    """One line per (enabled stage, disabled stage it feeds), in the line's order."""
    enabled = set(stages)
    lines = []
    for source in STAGES:
        if source not in enabled:
            continue
        for target, field in FEEDS[source].items():
            if target not in enabled:
                topic = getattr(names, field)
                lines.append(
                    f"warning: stage {source} is on but {target} is off: what {source} "
                    f"sends to {topic} waits there until a worker runs {target}"
                )
    return lines
