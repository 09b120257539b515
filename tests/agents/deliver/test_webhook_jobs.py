"""Which webhook jobs a completion starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from agents.deliver.destinations import WebhookRoute, load_destinations
from agents.deliver.webhook_jobs import jobs_for
from agents.tenants import Tenancy, parse_tenants, resolve
from schemas.records import AssetCompleted, AssetKind, CompletionStatus, GenerationRequest
from schemas.webhook_event import webhook_id

REQUEST = GenerationRequest(
    request_id="r-1",
    idempotency_key="k",
    tenant="acme",
    campaign_id="spring",
    kind=AssetKind.TEXT,
    prompt_template="p",
    callback_url="https://hooks.example.com/r-1",
)
DONE = AssetCompleted(
    request_id="r-1",
    idempotency_key="k",
    tenant="acme",
    campaign_id="spring",
    kind=AssetKind.TEXT,
    attempt=2,
    status=CompletionStatus.DELIVERED,
)


def test_the_callback_and_every_matching_route_get_one_job_each() -> None:
    routes = [
        WebhookRoute(campaign_id="spring", url="https://cms.example.com/hook", secret="cms"),
        WebhookRoute(tenant="acme", url="https://hooks.example.com/r-1", secret="dup"),
    ]
    jobs = jobs_for(REQUEST, DONE, routes)
    assert [(j.url, j.secret_name) for j in jobs] == [
        ("https://hooks.example.com/r-1", None),  # the request's own: the default secret
        ("https://cms.example.com/hook", "cms"),
    ]
    assert {j.webhook_id for j in jobs} == {webhook_id("r-1", 2)}
    assert all(j.delivery_attempt == 1 and j.due_at == DONE.completed_at for j in jobs)


def _tenancy() -> Tenancy:
    text = "tenants: {acme: {webhook_secret: acme-hooks}, globex: {}}"
    return resolve(parse_tenants(text, ".yaml"), {"acme-hooks": SecretStr("k")})


def test_with_a_tenants_file_the_callback_is_signed_with_the_tenants_own_secret() -> None:
    """Not the shared default: acme's signed events are worthless at globex's receiver."""
    jobs = jobs_for(REQUEST, DONE, [], _tenancy())
    assert [(j.url, j.secret_name) for j in jobs] == [
        ("https://hooks.example.com/r-1", "acme-hooks")
    ]


def test_a_tenant_without_a_webhook_secret_gets_no_callback_but_keeps_its_routes() -> None:
    request = REQUEST.model_copy(update={"tenant": "globex"})
    routes = [WebhookRoute(tenant="globex", url="https://cms.example.com/hook", secret="cms")]
    jobs = jobs_for(request, DONE, routes, _tenancy())
    assert [(j.url, j.secret_name) for j in jobs] == [("https://cms.example.com/hook", "cms")]
    unknown = REQUEST.model_copy(update={"tenant": "mallory"})
    assert jobs_for(unknown, DONE, [], _tenancy()) == []


def test_no_callback_and_no_route_means_no_job() -> None:
    request = REQUEST.model_copy(update={"callback_url": None})
    assert jobs_for(request, DONE, []) == []


def test_webhook_routes_match_by_tenant_and_campaign(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "destinations: {a: {type: filesystem, root: x}}\ndefault: a\nwebhooks:\n"
        "  - {tenant: acme, url: 'https://a.example.com'}\n"
        "  - {campaign_id: spring, url: 'https://s.example.com'}\n"
        "  - {tenant: globex, url: 'https://g.example.com'}\n"
    )
    destinations = load_destinations(path, {}, tmp_path)
    assert [h.url for h in destinations.webhooks_for("acme", "spring")] == [
        "https://a.example.com",
        "https://s.example.com",
    ]
    assert [h.url for h in destinations.webhooks_for("globex", "autumn")] == [
        "https://g.example.com"
    ]
