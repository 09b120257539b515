"""YAML front matter for Markdown: the provenance inside the file, where the format has a slot.

Static-site generators and headless CMSs read front matter and do not render it, so a Markdown
asset can carry its label itself (the JSON sidecar still travels with it). Front matter the
asset already has is kept: ours is added under one ``provenance`` key, never over its keys.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from agents.deliver.metadata.fields import Provenance
from agents.deliver.metadata.sidecar import sidecar_json

MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
FENCE = "---"


def _split(text: str) -> tuple[dict[str, Any], str] | None:
    """(existing front matter, body); ({}, text) when there is none; None when unreadable."""
    if not text.startswith(FENCE + "\n") and not text.startswith(FENCE + "\r\n"):
        return {}, text
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip("\r\n") in (FENCE, "..."):
            try:
                found = yaml.safe_load("".join(lines[1:index]))
            except (yaml.YAMLError, RecursionError):  # a hostile asset nests 3,000 deep
                return None
            if found is None:
                found = {}
            if not isinstance(found, dict):
                return None
            return found, "".join(lines[index + 1 :])
    return None  # an opening fence without a closing one: leave the document alone


def with_front_matter(data: bytes, p: Provenance) -> bytes | None:
    """The Markdown with our ``provenance`` block, or None when it cannot safely take one.

    None for text that is not UTF-8, front matter that does not parse as a mapping, or one
    that already has a ``provenance`` key (someone else's; we do not overwrite it).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    split = _split(text)
    if split is None:
        return None
    matter, body = split
    if "provenance" in matter:
        return None
    matter["provenance"] = json.loads(sidecar_json(p))
    dumped = yaml.safe_dump(matter, sort_keys=False, allow_unicode=True, width=100)
    return f"{FENCE}\n{dumped}{FENCE}\n{body}".encode()
