"""Benchmark the validation gateway's checks, one by one and as whole suites.

    python -m bench.checks [--repeats 300]

Inputs are made here, never downloaded:
  image      512x512 PNG from the offline renderer (what the line makes), uniform noise (the
             worst case for quantisation), and a flat colour;
  text       1 KB of English copy, 20 prohibited terms, 2 required disclaimers, language 'en';
  json       a 1 KB JSON document and a draft 2020-12 schema; code: 1 KB of Python;
  judge      run_judge() against a real OpenAI-compatible HTTP server on 127.0.0.1 answering
             at once, so the time is our overhead plus one local HTTP round trip;
  suite      Gateway.inspect() under a full brand profile (image rules, palette, text rules)
             for an offline image and an offline copy, decode included.
Per-check times exclude the decode (the checks share one decoded image); 'decode' is listed
separately. Medians and p95 of `repeats` runs; this machine is small and shared.
Prints a table and writes bench/results/checks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.inference.providers.openai import OpenAIConfig, OpenAIProvider
from agents.policy import Policy, ProfileBook
from agents.policy.loader import build_policies
from agents.policy.rules import ImagePolicy, JudgePolicy, PalettePolicy, TextPolicy
from agents.validate.checks import Check, Subject
from agents.validate.checks.image import ImageProber
from agents.validate.checks.image_policy import image_policy_checks
from agents.validate.checks.palette import BrandPalette
from agents.validate.checks.structured import CodeSyntax, JsonSchema
from agents.validate.checks.terms import default_detector, text_policy_checks
from agents.validate.gateway import Gateway
from agents.validate.judge import run_judge
from schemas.records import AssetKind, BlobRef, Constraints, GenerationRequest, RawAsset
from tests.support.provider_server import Reply, openai_chat_response, provider_server

TERMS = [
    "free", "guaranteed", "risk-free", "miracle", "cure", "cheapest", "no risk", "winner",
    "act now", "limited time", "best price", "100% safe", "lose weight", "cash bonus",
    "double your", "earn money", "instant", "lowest price", "once in a lifetime", "urgent",
]  # fmt: skip
DISCLAIMERS = ["Terms apply.", "See store for details."]
COPY = (
    "Meet the Aurora water bottle, made for trail runners who carry everything they need. "
    "Its double wall keeps water cold through a long climb and coffee warm on the way down. "
) * 6 + "Terms apply. See store for details."

PROFILE = {
    "id": "bench",
    "image": {"formats": ["png"], "min_width": 256, "min_height": 256, "max_bytes": 4_000_000,
              "color_modes": ["RGB", "RGBA", "P"], "transparency": "forbid", "aspect_ratio": "1:1"},
    "palette": {"colors": ["#f5f5eb", "#fae65a", "#339c71", "#1e3541"], "max_delta_e": 12,
                "min_share": 0.0},
    "text": {"prohibited": TERMS, "required": DISCLAIMERS, "max_chars": 2000, "language": "en"},
}  # fmt: skip


def request(kind: AssetKind, **constraints: Any) -> GenerationRequest:
    return GenerationRequest(
        request_id="bench",
        idempotency_key="bench",
        tenant="bench",
        campaign_id="bench",
        kind=kind,
        prompt_template="Hero banner for ${persona}" if kind is AssetKind.IMAGE else "Copy",
        variables={"persona": "trail runner", "locale": "en-GB", "product": "Aurora"},
        constraints=Constraints(**constraints),
        brand_profile_id="bench",
    )


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def offline(kind: AssetKind, **constraints: Any) -> bytes:
    req = request(kind, **constraints)
    made = asyncio.run(OfflineProvider().generate(ProviderCall(req, render_prompt(req), "offline")))
    return made.data


def check_rows(repeats: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(name: str, data: str, fn: Callable[[], object], target: str = "") -> None:
        median, p95 = timed(fn, repeats)
        rows.append({"check": name, "input": data, "median_ms": median, "p95_ms": p95,
                     "target": target})  # fmt: skip

    rng = random.Random(7)
    images = {
        "offline 512x512": offline(AssetKind.IMAGE, width=512, height=512, format="png"),
        "noise 512x512": png(Image.frombytes("RGB", (512, 512), rng.randbytes(512 * 512 * 3))),
        "flat 512x512": png(Image.new("RGB", (512, 512), (228, 0, 43))),
    }
    image_request = request(AssetKind.IMAGE, width=512, height=512, format="png")
    for label, data in images.items():
        subject = Subject(request=image_request, data=data, media_type="image/png")
        prober = ImageProber()
        add("decode (shared by image checks)", label, lambda d=data: ImageProber()(d))
        prober(data)  # decoded once; the checks below reuse it, as in a suite
        palette = BrandPalette(PalettePolicy.model_validate(PROFILE["palette"]), prober)
        add("palette.brand", label, lambda s=subject, c=palette: c(s), "<= 10 ms")
        rules = image_policy_checks(ImagePolicy.model_validate(PROFILE["image"]), prober)
        name = f"image rules ({len(rules)} checks)"
        add(name, label, lambda s=subject, r=rules: [c(s) for c in r])

    text_request = request(AssetKind.TEXT, language="en")
    data = COPY.encode()
    text_subject = Subject(request=text_request, data=data, media_type="text/plain")
    text_checks = text_policy_checks(TextPolicy.model_validate(PROFILE["text"]), default_detector())
    label = f"{len(data)} B English"
    for check in text_checks:
        add(check.code, label, lambda c=check: c(text_subject))
    add("all text checks", label, lambda: [c(text_subject) for c in text_checks], "<= 1 ms / KB")
    no_language: list[Check] = [c for c in text_checks if c.code != "text.language"]
    add("text checks without language", label, lambda: [c(text_subject) for c in no_language])

    schema = json.dumps({"type": "object", "required": ["items"], "properties": {"items": {
        "type": "array", "items": {"type": "object", "required": ["title", "price"],
        "properties": {"title": {"type": "string"}, "price": {"type": "number"}}}}}})  # fmt: skip
    document = json.dumps({"items": [{"title": f"Item {i}", "price": i * 1.5} for i in range(28)]})
    json_subject = Subject(request=request(AssetKind.JSON, json_schema=schema),
                           data=document.encode(), media_type="application/json")  # fmt: skip
    add("json.schema", f"{len(document)} B JSON", lambda: JsonSchema()(json_subject))
    source = "\n".join(f"def f{i}(x):\n    return x * {i} + 1\n" for i in range(30))
    code_subject = Subject(request=request(AssetKind.CODE, language="python"),
                           data=source.encode(), media_type="text/x-python")  # fmt: skip
    add("code.syntax (python)", f"{len(source)} B Python", lambda: CodeSyntax()(code_subject))
    return rows


def suite_rows(repeats: int) -> list[dict[str, Any]]:
    book = ProfileBook(build_policies(PROFILE, "bench"))
    gateway = Gateway(book, {}, detector=default_detector())
    rows = []
    for kind, constraints in (
        (AssetKind.IMAGE, {"width": 512, "height": 512, "format": "png"}),
        (AssetKind.TEXT, {"max_chars": 280, "language": "en"}),
    ):
        data = offline(kind, **constraints)
        req = request(kind, **constraints)
        media = "image/png" if kind is AssetKind.IMAGE else "text/plain"
        blob = BlobRef(uri="file:///x", sha256="0" * 64, size=len(data), media_type=media)
        raw = RawAsset(request=req, blob=blob, provider="offline", model_version="offline-1",
                       latency_ms=0.0)  # fmt: skip
        policy = book.resolve("bench", "bench")
        if not isinstance(policy, Policy):
            raise SystemExit(policy.message)

        def inspect(raw: RawAsset = raw, data: bytes = data, policy: Policy = policy) -> object:
            # A fresh bytes object per run, as each asset is: no cached decode.
            return asyncio.run(gateway.inspect(raw, bytes(bytearray(data)), policy))

        checks = len(gateway.checks_for(policy))
        median, p95 = timed(inspect, repeats)
        rows.append({"check": f"full suite ({kind.value}, decode incl.)",
                     "input": f"offline {len(data)} B", "median_ms": median, "p95_ms": p95,
                     "target": f"{checks} checks"})  # fmt: skip
    return rows


def judge_rows(repeats: int) -> list[dict[str, Any]]:
    verdict = json.dumps({"verdict": "pass", "score": 0.9, "reasons": ["on brand"]})
    with provider_server() as server:
        server.handle(
            "POST", "/v1/chat/completions",
            lambda body: Reply(json=openai_chat_response(verdict, model=body["model"])),
        )  # fmt: skip
        provider = OpenAIProvider("judge", OpenAIConfig(base_url=f"{server.url}/v1"), None)
        policy = JudgePolicy(provider="judge", model="judge-mini", rubric="On brand?")
        subject = Subject(request=request(AssetKind.TEXT), data=COPY.encode(),
                          media_type="text/plain")  # fmt: skip

        async def many() -> list[float]:
            out = []
            for _ in range(repeats):
                start = time.perf_counter()
                outcome = await run_judge(subject, policy, provider)
                out.append((time.perf_counter() - start) * 1000.0)
                assert outcome.result.passed
            await provider.aclose()
            return out

        samples = sorted(asyncio.run(many()))
    p95 = samples[int(0.95 * (len(samples) - 1))]
    return [{"check": "judge.verdict (local HTTP judge)", "input": f"{len(COPY)} B copy",
             "median_ms": statistics.median(samples), "p95_ms": p95,
             "target": "1 round trip"}]  # fmt: skip


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("check", "input", "median ms", "p95 ms", "target")
    lines = [header] + [
        (r["check"], r["input"], f"{r['median_ms']:.3f}", f"{r['p95_ms']:.3f}", r["target"])
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--json", type=Path, default=Path("bench/results/checks.json"))
    args = parser.parse_args()
    rows = check_rows(args.repeats) + suite_rows(args.repeats // 3) + judge_rows(args.repeats)
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": platform.python_version(), "repeats": args.repeats}
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
