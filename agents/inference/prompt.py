"""The prompt a provider sees: the request's template filled from its variables."""

from __future__ import annotations

import string

from schemas.records import GenerationRequest

FEEDBACK_HEADER = (
    "An earlier attempt was rejected by automated validation. "
    "Produce a new version that fixes every problem below:"
)


def render_prompt(request: GenerationRequest) -> str:
    """``${name}`` placeholders filled; unknown ones are left as written, never an error.

    A template is producer input: a stray ``$`` must not fail a request that a person would
    read as fine. Validation feedback of earlier attempts is appended after substitution, so
    a ``$`` in a check message is never read as a placeholder.
    """
    prompt = string.Template(request.prompt_template).safe_substitute(request.variables)
    if not request.feedback:
        return prompt
    lines = "\n".join(f"- {line}" for line in request.feedback)
    return f"{prompt}\n\n{FEEDBACK_HEADER}\n{lines}"
