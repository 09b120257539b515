"""Which webhook jobs a completion starts: the request's callback_url and matching routes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agents.deliver.destinations import WebhookRoute
from agents.tenants import Tenancy
from schemas.records import AssetCompleted, GenerationRequest, WebhookJob
from schemas.webhook_event import webhook_id

log = logging.getLogger(__name__)


def jobs_for(
    request: GenerationRequest,
    done: AssetCompleted,
    routes: Sequence[WebhookRoute],
    tenancy: Tenancy | None = None,
) -> list[WebhookJob]:
    """One job per distinct URL, due now.

    The request's own callback_url is chosen by whoever produced the request, so with a tenants
    file it is signed with the tenant's own ``webhook_secret``, and a tenant without one gets no
    callback: an event signed with a shared secret could be replayed to another tenant's
    receiver, which would accept it. Without a tenants file (one trust domain) the default
    secret signs it, as before.
    """
    targets: dict[str, str | None] = {}
    if request.callback_url:
        allowed, secret = (
            (True, None) if tenancy is None else tenancy.callback_secret(request.tenant)
        )
        if allowed:
            targets[request.callback_url] = secret
        else:
            log.warning(
                "request %s: tenant %r has no webhook_secret in the tenants file; its "
                "callback_url is not called",
                request.request_id,
                request.tenant,
            )
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
