"""Which webhook jobs a completion starts: the request's callback_url and matching routes."""

from __future__ import annotations

from collections.abc import Sequence

from agents.deliver.destinations import WebhookRoute
from agents.deliver.webhooks.payload import webhook_id
from streams.records import AssetCompleted, GenerationRequest, WebhookJob


def jobs_for(
    request: GenerationRequest, done: AssetCompleted, routes: Sequence[WebhookRoute]
) -> list[WebhookJob]:
    """One job per distinct URL, due now; the request's own callback uses the default secret."""
    targets: dict[str, str | None] = {}
    if request.callback_url:
        targets[request.callback_url] = None
    for route in routes:
        targets.setdefault(route.url, route.secret)
    msg_id = webhook_id(done.request_id, done.attempt)
    return [
        WebhookJob(
            webhook_id=msg_id,
            url=url,
            secret_name=secret,
            due_at=done.completed_at,
            completion=done,
        )
        for url, secret in targets.items()
    ]
