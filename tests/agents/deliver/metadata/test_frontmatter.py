"""Markdown carries its provenance as YAML front matter, read back by a front-matter parser."""

from __future__ import annotations

import json

import frontmatter  # python-frontmatter: how static-site tooling reads these files
import pytest

from agents.deliver.metadata import DIGITAL_SOURCE_TYPE, Provenance, sidecar_json, stamp
from agents.deliver.metadata.frontmatter import with_front_matter

BODY = "# Spring sale\n\nHello **Ada** — 20 % off.\n"


def test_markdown_gets_front_matter_and_keeps_its_body(provenance: Provenance) -> None:
    stamped = stamp(BODY.encode(), "text/markdown; charset=utf-8", provenance)
    post = frontmatter.loads(stamped.data.decode("utf-8"))
    assert post.content == BODY.rstrip("\n")  # the parser strips the trailing newline
    assert stamped.data.decode("utf-8").endswith(BODY)  # byte for byte after the fence
    label = post.metadata["provenance"]
    assert label == json.loads(sidecar_json(provenance))
    assert label["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert label["copyright"] == provenance.copyright  # hostile characters survive YAML
    assert stamped.sidecar == sidecar_json(provenance)  # the sidecar still travels with it


def test_existing_front_matter_is_kept(provenance: Provenance) -> None:
    doc = "---\ntitle: Spring\ntags: [sale, de]\n---\n" + BODY
    out = with_front_matter(doc.encode(), provenance)
    assert out is not None
    post = frontmatter.loads(out.decode("utf-8"))
    assert post.metadata["title"] == "Spring"
    assert post.metadata["tags"] == ["sale", "de"]
    assert post.metadata["provenance"]["request_id"] == provenance.request_id
    assert out.decode("utf-8").endswith(BODY)


@pytest.mark.parametrize(
    "doc",
    [
        "---\nprovenance: theirs\n---\nbody\n",  # someone else's key: not overwritten
        "---\n- a list\n---\nbody\n",  # front matter that is not a mapping
        "---\ntitle: [unclosed\n---\nbody\n",  # does not parse
        "---\ntitle: no closing fence\nbody\n",
        "---\na: " + "[" * 3000 + "]" * 3000 + "\n---\nbody\n",  # RecursionError before
    ],
)
def test_front_matter_we_cannot_extend_leaves_the_file_alone(
    provenance: Provenance, doc: str
) -> None:
    assert with_front_matter(doc.encode(), provenance) is None
    stamped = stamp(doc.encode(), "text/markdown", provenance)
    assert stamped.data == doc.encode()
    assert stamped.sidecar == sidecar_json(provenance)


def test_plain_text_is_not_given_front_matter(provenance: Provenance) -> None:
    stamped = stamp(BODY.encode(), "text/plain; charset=utf-8", provenance)
    assert stamped.data == BODY.encode()


def test_non_utf8_markdown_is_left_alone(provenance: Provenance) -> None:
    data = "café".encode("latin-1")
    assert with_front_matter(data, provenance) is None
