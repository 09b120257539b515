"""Shadow copies in the validate stage: judged like any asset, recorded, never acted on.

A ``RawAsset`` with ``rung: shadow`` is a shadow version's copy of a request whose primary
is on its way through the line (see ``agents/generate/shadow.py``). It runs through the same
gateway (brand policy, checks, judge; the judge's spend in the judge's lane) so that
``assetline models compare`` can set the shadow's approval rate beside the primary's. What
triage would have done is kept as the record's ``disposition`` (APPROVED, REGENERATE, REVIEW
or REJECTED), but nothing is done about it: the ``ValidatedAsset`` goes to
``<prefix>.shadows`` only. No re-generation is sent, no review item, nothing on ``.approved``
or ``.rejected``, so deliver never completes a shadow and the request keeps exactly one
completion. A shadow whose validation crashes is dead-lettered like any event but ends
nothing (no crash outcome is armed for it): its primary is not touched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agents.inference.routing.versions import SHADOW, SHADOW_HEADER
from agents.validate.gateway import Fetch, Gateway
from schemas.records import RawAsset, ValidatedAsset


def is_shadow(raw: RawAsset) -> bool:
    """Whether ``raw`` is a shadow version's copy (never delivered, never completed)."""
    return raw.rung == SHADOW


async def validate_shadow(
    raw: RawAsset,
    gateway: Gateway,
    fetch: Fetch,
    send: Callable[[ValidatedAsset, list[tuple[str, bytes]]], Awaitable[None]],
    send_alerts: Callable[[], Awaitable[Any]],
) -> ValidatedAsset:
    """Judge the shadow copy ``raw`` and hand the verdict to ``send`` (-> ``.shadows``).

    The triage decision is only recorded (``disposition``); its re-generation request, if
    any, is dropped.
    """
    validated, _decision = await gateway.assess(raw, fetch)
    await send_alerts()  # the judge's breaker or budget: operators hear about it either way
    await send(validated, [(SHADOW_HEADER, b"true")])
    return validated
