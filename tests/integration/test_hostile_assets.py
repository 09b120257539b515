"""Hostile generated assets on a real broker (issue 12 items 11 and 12).

A real OpenAI-shaped server plays a model that answers with disguised prohibited terms
(``fr&#101;e``, a BiDi override showing "free", ``riskfree``), a PNG with two IHDR chunks, an
APNG whose later frame is off-brand, and a PNG carrying someone else's provenance (eXIf
Copyright EvilCorp, a lower-case ``copyright`` chunk, a stale C2PA ``caBX``). Every hostile
asset must end with a completion naming the check that caught it; the clean ones and the one
with foreign metadata are delivered, the latter carrying our provenance alone.
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest, ModelSpec
from streams.settings import Settings
from tests.integration.helpers import submit_requests
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

ROUTING = """
providers:
  primary:
    type: openai
    base_url: {url}/v1
    api_key: primary
aliases:
  copy:
    chain: [{{provider: primary, model: gpt-4o-mini, timeout_s: 5, max_retries: 0}}]
  hero:
    chain: [{{provider: primary, model: gpt-image-1, timeout_s: 5, max_retries: 0}}]
default_alias: copy
"""

PROFILE = """
id: hostile
copyright: "(c) 2026 Hostile Test Brand"
creator: Brand Studio
max_attempts: 1
review: false
palette:
  colors: ["#E4002B"]
  max_delta_e: 10
  min_share: 0.8
text:
  prohibited: ["free", "risk-free"]
"""

RED = (228, 0, 43)
EVIL = "EvilCorp"

TEXTS = {
    "entity": "Get your shoes fr&#101;e today.",
    "bidi": "Get your shoes \u202eeerf\u202c today.",
    "glued": "Enjoy a riskfree trial of our shoes.",
    "accent": "Get your shoes fr\u00e9e today.",
    "clean": "A carefree summer and the freedom of the trail.",
}


def chunk(ctype: bytes, payload: bytes) -> bytes:
    body = ctype + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def red_png(**params: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(out, "PNG", **params)
    return out.getvalue()


def two_ihdr() -> bytes:
    data = red_png()
    return data[:33] + data[8:33] + data[33:]


def apng_off_brand_later() -> bytes:
    frames = [Image.new("RGB", (64, 64), color) for color in (RED, (20, 170, 60))]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    return out.getvalue()


def foreign_provenance() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("copyright", f"(c) {EVIL}")
    info.add_text("Comment", "not AI generated")
    data = red_png(pnginfo=info)
    exif = Image.Exif()
    exif[0x8298] = f"(c) {EVIL}"
    extra = chunk(b"eXIf", exif.tobytes().removeprefix(b"Exif\x00\x00"))
    extra += chunk(b"caBX", b"jumb c2pa stale manifest " + EVIL.encode())
    return data[:33] + extra + data[33:]


IMAGES = {
    "two-ihdr": two_ihdr(),
    "apng": apng_off_brand_later(),
    "foreign": foreign_provenance(),
    "plain": red_png(),
}


class Model:
    """Answers by the persona named in the prompt."""

    @staticmethod
    def chat(body: Any) -> Reply:
        prompt = body["messages"][-1]["content"]
        persona = next(name for name in TEXTS if f"persona {name}." in str(prompt))
        return Reply(json=openai_chat_response(TEXTS[persona], model=body["model"]))

    @staticmethod
    def image(body: Any) -> Reply:
        persona = next(name for name in IMAGES if f"persona {name}." in body["prompt"])
        image = base64.b64encode(IMAGES[persona]).decode("ascii")
        return Reply(json={"created": 1, "data": [{"b64_json": image}]})


@pytest.fixture
def model_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        server.handle("POST", "/v1/chat/completions", Model.chat)
        server.handle("POST", "/v1/images/generations", Model.image)
        yield server


def _request(run: str, name: str, kind: AssetKind) -> GenerationRequest:
    image = kind is AssetKind.IMAGE
    return GenerationRequest(
        request_id=f"ha-{run}-{name}",
        idempotency_key=f"ha-{run}-{name}",
        tenant="acme",
        campaign_id="hostile",
        kind=kind,
        prompt_template="Asset for persona ${persona}.",
        variables={"persona": name},
        model=ModelSpec(alias="hero" if image else "copy"),
        constraints=Constraints(width=64, height=64, format="png") if image else Constraints(),
        brand_profile_id="hostile",
    )


def test_hostile_assets_are_caught_and_foreign_provenance_is_stripped(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    model_server: ProviderServer,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=model_server.url))
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "hostile.yaml").write_text(PROFILE)
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "profiles_dir": profiles,
            "api_keys": {"primary": SecretStr("sk-test-" + uuid.uuid4().hex)},
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [_request(run, name, AssetKind.TEXT) for name in TEXTS]
    requests += [_request(run, name, AssetKind.IMAGE) for name in IMAGES]
    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)

    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert sorted(completions) == sorted(ids), worker.log_tail()
    done = {rid.removeprefix(f"ha-{run}-"): found[0] for rid, found in completions.items()}

    def caught_by(name: str) -> str:
        completion = done[name]
        assert completion.status is not CompletionStatus.DELIVERED, (name, completion)
        return " ".join(completion.reasons)

    for name in ("entity", "bidi", "glued", "accent"):
        assert "text.prohibited" in caught_by(name), name
    assert "image.container" in caught_by("two-ihdr")
    assert "image.animated" in caught_by("apng")
    for name in ("clean", "plain", "foreign"):
        assert done[name].status is CompletionStatus.DELIVERED, (name, done[name].reasons)

    location = done["foreign"].location
    assert location is not None
    delivered = Path(location.removeprefix("file://")).read_bytes()
    assert EVIL.encode() not in delivered
    assert b"not AI" not in delivered
    assert b"caBX" not in delivered
    with Image.open(io.BytesIO(delivered)) as image:
        text = dict(image.text)  # type: ignore[attr-defined]
        assert "exif" not in image.info  # the foreign eXIf is gone (it had no Orientation)
    assert text["Copyright"] == "(c) 2026 Hostile Test Brand"
    assert "copyright" not in text
    assert "Comment" not in text
