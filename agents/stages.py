"""The registry of stages: each stage's name and the function that installs it on a line.

The runtime (:func:`streams.app.create_line`) takes installers as an argument and imports no
stage; the composition root picks them from here by the names in ``settings.stages``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from agents.deliver.agent import install as install_deliver
from agents.generate.agent import install as install_generate
from agents.notify.agent import install as install_notify
from agents.review.agent import install as install_review
from agents.validate.agent import install as install_validate
from streams.app import StageInstaller

#: Stage name (as in ``ASSETLINE_STAGES``) -> its installer, in the order the line runs them.
INSTALLERS: Final[Mapping[str, StageInstaller]] = {
    "generate": install_generate,
    "validate": install_validate,
    "deliver": install_deliver,
    "review": install_review,
    "notify": install_notify,
}


def installers_for(names: Iterable[str]) -> list[StageInstaller]:
    """The installers of the named stages; a name settings did not reject is always known."""
    return [INSTALLERS[name] for name in names]
