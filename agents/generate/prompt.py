"""The prompt a provider sees: the request's template filled from its variables."""

from __future__ import annotations

import string

from streams.records import GenerationRequest


def render_prompt(request: GenerationRequest) -> str:
    """``${name}`` placeholders filled; unknown ones are left as written, never an error.

    A template is producer input: a stray ``$`` must not fail a request that a person would
    read as fine.
    """
    return string.Template(request.prompt_template).safe_substitute(request.variables)
