"""Small, valid code snippets (Python, JavaScript, JSON) built from the copy templates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline.json_document import render_json
from agents.inference.providers.offline.text import (
    fill_prompt,
    render_copy,
)

#: Canonical language name -> media type of the snippet.
CODE_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "python": "text/x-python",
    "javascript": "application/javascript",
    "json": "application/json",
}
_LANGUAGE_ALIASES: Final[Mapping[str, str]] = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "node": "javascript",
    "ecmascript": "javascript",
}


def canonical_language(language: str | None) -> str:
    """Normalise a language name (unset means python); unknown ones are a ProviderError."""
    name = "python" if language is None else language.strip().lower()
    name = _LANGUAGE_ALIASES.get(name, name)
    if name not in CODE_MEDIA_TYPES:
        supported = ", ".join(sorted(CODE_MEDIA_TYPES))
        raise ProviderError(
            "provider.unsupported_language",
            f"offline provider cannot write {language!r} code (supported: {supported})",
        )
    return name


def _python_snippet(prompt: str, variables: Mapping[str, str], copy: str) -> str:
    # repr() yields valid literals for any str (quotes, NULs, line separators are escaped).
    lines = [
        '"""Generated offline: a constant and an accessor for one piece of copy."""',
        "",
        f"PROMPT = {prompt!r}",
        f"VARIABLES: dict[str, str] = {dict(sorted(variables.items()))!r}",
        f"COPY = {copy!r}",
        "",
        "",
        "def headline() -> str:",
        '    """Return the generated copy."""',
        "    return COPY",
        "",
        "",
        'if __name__ == "__main__":',
        "    print(headline())",
    ]
    return "\n".join(lines) + "\n"


def _javascript_snippet(prompt: str, variables: Mapping[str, str], copy: str) -> str:
    # ASCII-only JSON literals are valid JavaScript literals, U+2028/2029 included (escaped).
    def literal(value: Any) -> str:
        return json.dumps(value, ensure_ascii=True, sort_keys=True)

    lines = [
        '"use strict";',
        "",
        f"const PROMPT = {literal(prompt)};",
        f"const VARIABLES = Object.freeze({literal(dict(variables))});",
        f"const COPY = {literal(copy)};",
        "",
        "function headline() {",
        "  return COPY;",
        "}",
        "",
        "module.exports = { PROMPT, VARIABLES, COPY, headline };",
    ]
    return "\n".join(lines) + "\n"


def render_code(prompt: str, variables: Mapping[str, str], language: str | None, seed: int) -> str:
    """A small, syntactically valid snippet in ``language`` that carries the request's copy."""
    name = canonical_language(language)
    if name == "json":
        return render_json(prompt, variables, None, seed)
    filled = fill_prompt(prompt, variables)
    copy = render_copy(prompt, variables, None, seed)
    if name == "python":
        return _python_snippet(filled, variables, copy)
    return _javascript_snippet(filled, variables, copy)
