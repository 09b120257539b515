"""The copy's sentiment travels with it: sidecar, Markdown front matter, XMP, and completion."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import frontmatter  # python-frontmatter: how static-site tooling reads these files
import pytest
from PIL import Image

from agents.deliver.completion import completion
from agents.deliver.metadata import Provenance, provenance_for, sidecar_json, stamp
from agents.deliver.metadata.xmp import NS_ASSETLINE
from agents.validate.checks._base import Subject
from agents.validate.checks.sentiment import ImageCopySentiment, TextSentiment, score_text
from schemas.records import AssetKind, CompletionStatus, ValidatedAsset
from streams.codecs import Codecs
from tests.support.assets import make_request, make_validated, passed

COPY = "Spring is here: enjoy our brightest, happiest collection yet!"


def _scored() -> tuple[Provenance, float]:
    request = make_request()
    check = TextSentiment()(Subject(request=request, data=COPY.encode(), media_type="text/plain"))
    assert check.measured is not None
    validated = make_validated([passed("text.not_empty"), check], request=request)
    return provenance_for(validated, copyright="(c) ACME", creator=None), float(check.measured)


def test_the_measured_score_and_label_are_in_the_provenance() -> None:
    provenance, score = _scored()
    assert score > 0.05
    assert provenance.sentiment == f"{score:.4f}"
    assert provenance.sentiment_label == "positive"
    fields = dict(provenance.assetline_fields())
    assert fields["sentiment"] == f"{score:.4f}"
    assert fields["sentiment_label"] == "positive"


def test_sidecar_and_front_matter_carry_the_sentiment() -> None:
    provenance, score = _scored()
    sidecar = json.loads(sidecar_json(provenance))
    assert (sidecar["sentiment"], sidecar["sentiment_label"]) == (f"{score:.4f}", "positive")
    stamped = stamp(f"# Spring\n\n{COPY}\n".encode(), "text/markdown", provenance)
    label = frontmatter.loads(stamped.data.decode()).metadata["provenance"]
    assert isinstance(label, dict)
    assert label["sentiment"] == f"{score:.4f}"
    assert label["sentiment_label"] == "positive"


def test_an_unscored_asset_says_nothing_about_sentiment() -> None:
    validated = make_validated([passed("text.not_empty")])
    provenance = provenance_for(validated, copyright=None, creator=None)
    assert provenance.sentiment is None
    assert "sentiment" not in json.loads(sidecar_json(provenance))
    assert "sentiment" not in dict(provenance.assetline_fields())


def test_the_completion_carries_score_and_label_and_round_trips() -> None:
    request = make_request()
    check = TextSentiment(min_score=0.9)(
        Subject(request=request, data=b"Awful delays again.", media_type="text/plain")
    )
    validated = make_validated([check], request=request)
    done = completion(validated, CompletionStatus.REJECTED)
    assert done.sentiment is not None
    assert done.sentiment < -0.05
    assert done.sentiment_label == "negative"
    codec = Codecs.load().completed
    back = codec.decode(codec.encode(done))
    assert (back.sentiment, back.sentiment_label) == (done.sentiment, "negative")
    plain = completion(make_validated([passed("text.not_empty")]), CompletionStatus.DELIVERED)
    assert (plain.sentiment, plain.sentiment_label) == (None, None)


# --- images made from a prompt's copy ------------------------------------------------------------

HEADLINE = "Sunny days ahead: our happiest summer sale!"


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 90, 160)).save(buffer, fmt)
    return buffer.getvalue()


def _image_validated(variables: dict[str, str]) -> ValidatedAsset:
    request = make_request(kind=AssetKind.IMAGE, variables=variables)
    check = ImageCopySentiment()(
        Subject(request=request, data=_image("PNG"), media_type="image/png")
    )
    return make_validated([passed("image.decodes"), check], request=request)


def _xmp_fields(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as im:
        packet = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp")
    assert packet
    root = ET.fromstring(packet)
    prefix = f"{{{NS_ASSETLINE}}}"
    return {
        el.tag.removeprefix(prefix): el.text or ""
        for el in root.iter()
        if el.tag.startswith(prefix)
    }


@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_an_image_made_from_copy_has_the_copys_sentiment_in_its_xmp(
    fmt: str, media_type: str
) -> None:
    expected = score_text(HEADLINE)
    assert expected.label == "positive"
    provenance = provenance_for(
        _image_validated({"headline": HEADLINE}), copyright=None, creator=None
    )
    stamped = stamp(_image(fmt), media_type, provenance)
    assert stamped.sidecar is None  # images carry it inside the file
    fields = _xmp_fields(stamped.data)
    assert fields["sentiment"] == f"{expected.score:.4f}"
    assert fields["sentiment_label"] == "positive"


def test_an_image_made_from_copy_carries_its_sentiment_on_the_completion() -> None:
    done = completion(_image_validated({"headline": HEADLINE}), CompletionStatus.DELIVERED)
    expected = score_text(HEADLINE)
    assert (done.sentiment, done.sentiment_label) == (expected.score, expected.label)


def test_an_image_without_copy_says_nothing_about_sentiment() -> None:
    validated = _image_validated({"persona": "runner"})
    provenance = provenance_for(validated, copyright=None, creator=None)
    fields = _xmp_fields(stamp(_image("PNG"), "image/png", provenance).data)
    assert "request_id" in fields
    assert "sentiment" not in fields
    assert "sentiment_label" not in fields
    done = completion(validated, CompletionStatus.DELIVERED)
    assert (done.sentiment, done.sentiment_label) == (None, None)
