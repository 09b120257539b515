"""The demo campaign: personas x locales x {image, copy}, run through a real line.

The requests name the embedded ``demo`` brand profile, so the demo runs the validation gateway
too: image rules, prohibited terms, and the copy's language against its locale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from schemas.records import AssetCompleted, AssetKind, Constraints, GenerationRequest

PERSONAS = ("trail runner", "urban gardener", "retro gamer")
LOCALES = ("en-GB", "de-DE")
IMAGE_PROMPT = "Hero banner for ${persona} (${locale}): ${product}, bold and bright"
COPY_PROMPT = "Write a short headline for ${persona} in ${locale} about ${product}"
DEMO_PROFILE_ID = "demo"

#: Written to the demo's run folder when no ASSETLINE_PROFILES_DIR is set.
DEMO_PROFILE = """\
id: demo
name: Aurora demo brand
max_attempts: 2   # one repair attempt for repairable failures
review: false     # the demo has no reviewer: what cannot be repaired is rejected
image:
  formats: [png]
  min_width: 256
  min_height: 256
  max_bytes: 2000000
  transparency: forbid
text:
  prohibited: [guaranteed, risk-free, miracle, cure, "100% free"]
  max_chars: 280
"""


def demo_requests(
    run_id: str,
    *,
    personas: Sequence[str] = PERSONAS,
    locales: Sequence[str] = LOCALES,
    tenant: str = "acme",
    campaign_id: str = "spring-launch",
    product: str = "the Aurora water bottle",
) -> list[GenerationRequest]:
    """One IMAGE and one TEXT request per persona and locale, with stable ids per run."""
    requests = []
    for persona in personas:
        for locale in locales:
            variables = {"persona": persona, "locale": locale, "product": product}
            for kind in (AssetKind.IMAGE, AssetKind.TEXT):
                intent = f"{campaign_id}|{persona}|{locale}|{kind.value}"
                key = hashlib.sha256(intent.encode()).hexdigest()[:16]
                image = kind is AssetKind.IMAGE
                requests.append(
                    GenerationRequest(
                        request_id=f"{run_id}-{key}",
                        idempotency_key=key,
                        tenant=tenant,
                        campaign_id=campaign_id,
                        kind=kind,
                        prompt_template=IMAGE_PROMPT if image else COPY_PROMPT,
                        variables=variables,
                        constraints=(
                            Constraints(width=512, height=512, format="png")
                            if image
                            else Constraints(max_chars=280, language=locale)
                        ),
                        brand_profile_id=DEMO_PROFILE_ID,
                        metadata={"persona": persona, "locale": locale},
                    )
                )
    return requests


def summary_table(
    requests: Iterable[GenerationRequest], completions: dict[str, list[AssetCompleted]]
) -> str:
    """A plain-text table: request, kind, status, attempt, delivered path (or why not), latency."""
    rows = [("request", "kind", "status", "attempt", "delivered file", "latency ms")]
    for request in requests:
        done = completions.get(request.request_id)
        if not done:
            rows.append((request.request_id, request.kind.value, "MISSING", "-", "-", "-"))
            continue
        last = done[-1]
        where = last.location.removeprefix("file://") if last.location else "; ".join(last.reasons)
        latency = f"{last.timings_ms.get('total', 0.0):.0f}"
        rows.append(
            (
                request.request_id,
                request.kind.value,
                last.status.value,
                str(last.attempt),
                where,
                latency,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
