"""A line of two tenants for the delivery tests: ``SLOW_TENANT``'s assets go to a DAM over
HTTP (:mod:`tests.support.dam_server`), ``FS_TENANT``'s to disk, one image (one PUT) each."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from assetline.client import await_completions
from schemas.records import AssetCompleted, AssetKind, Constraints, GenerationRequest
from streams.settings import Settings
from tests.integration.helpers import submit_requests

SLOW_TENANT = "slow-dam-co"
FS_TENANT = "fs-co"


def image_requests(run: str, tenant: str, count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"{run}-{tenant}-{i:03d}",
            idempotency_key=f"{run}-{tenant}-{i:03d}",
            tenant=tenant,
            campaign_id="launch",
            kind=AssetKind.IMAGE,  # one PUT each: the label is inside the PNG, no sidecar
            prompt_template="Hero for ${p}",
            variables={"p": f"persona {i}"},
            constraints=Constraints(width=64, height=64, format="png"),
        )
        for i in range(count)
    ]


def dam_line(
    line_settings: Settings,
    dam_url: str,
    tmp_path: Path,
    *,
    dam_in_flight: int,
    local_in_flight: int | None = None,
    retry_attempts: int | None = None,
    **updates: Any,
) -> Settings:
    """``line_settings`` with the two destinations (``retry_attempts``: the delivery retry,
    with 10 ms waits) and ``updates``."""
    local = f'{{type: filesystem, root: "{tmp_path / "delivery"}"'
    local += f", max_in_flight: {local_in_flight}}}" if local_in_flight is not None else "}"
    retry = (
        f"retry: {{attempts: {retry_attempts}, base_delay_s: 0.01, max_delay_s: 0.01}}\n"
        if retry_attempts is not None
        else ""
    )
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(
        f"""
destinations:
  local: {local}
  dam: {{type: http, url: "{dam_url}/upload/{{tenant}}/{{name}}", auth_header: Authorization,
        secret: dam, max_in_flight: {dam_in_flight}}}
default: local
routes:
  - {{tenant: {SLOW_TENANT}, destination: dam}}
{retry}"""
    )
    return line_settings.model_copy(
        update={
            "destinations_file": destinations,
            "api_keys": {"dam": SecretStr("Bearer dam-secret")},
            **updates,
        }
    )


def once_each(settings: Settings, ids: list[str], timeout: float) -> dict[str, AssetCompleted]:
    """Each request's one completion; fails when one is missing or came twice."""
    seen = asyncio.run(await_completions(settings, ids, timeout=timeout))
    assert set(seen) == set(ids), f"{len(set(ids) - set(seen))} of {len(ids)} did not complete"
    doubled = {rid: len(events) for rid, events in seen.items() if len(events) != 1}
    assert not doubled, f"completed more than once: {doubled}"
    return {rid: events[0] for rid, events in seen.items()}


def warm_up(settings: Settings, run: str) -> None:
    """One disk delivery end to end: partitions assigned, tables recovered."""
    warm = image_requests(f"{run}-warm", FS_TENANT, 1)
    asyncio.run(submit_requests(settings, warm))
    once_each(settings, [warm[0].request_id], timeout=120)
