"""Admission of ``.requests`` records: attempts only from the line, tenants, profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.tenants import (
    ATTEMPT_FORGED,
    ATTEMPT_INVALID,
    DEVELOPMENT_LINE_SECRET,
    ID_OUTSIDE_NAMESPACE,
    PROFILE_FORBIDDEN,
    UNAUTHENTICATED,
    UNKNOWN_TENANT,
    Gatekeeper,
    Tenancy,
    TenantsFileError,
    line_secret,
    load_tenancy,
    parse_tenants,
    resolve,
)
from schemas.attempts import MAX_ATTEMPT
from schemas.records import AssetKind, GenerationRequest
from streams.codecs import Codecs
from streams.settings import Settings
from streams.signing import sign_request

CODECS = Codecs.load()
LINE = b"line-secret-for-tests"
KEYS = {
    "acme-producer": SecretStr("acme-key"),
    "acme-hooks": SecretStr("acme-hook-key"),
    "line": SecretStr("line-secret-for-tests"),
}
TENANTS_YAML = """
tenants:
  acme:
    producer_secret: acme-producer
    profiles: [acme, acme-kids]
    default_profile: acme
    webhook_secret: acme-hooks
  open: {}
"""


def request(**update: object) -> GenerationRequest:
    base = GenerationRequest(
        request_id="victim-1",
        idempotency_key="k",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Hello",
    )
    return base.model_copy(update=update)


def tenancy() -> Tenancy:
    return resolve(parse_tenants(TENANTS_YAML, ".yaml"), KEYS)


def encoded(req: GenerationRequest) -> bytes:
    return CODECS.request.encode(req)


# --- attempts: only the line re-submits --------------------------------------------------


@pytest.mark.parametrize("attempt", [2, 50, 1001, MAX_ATTEMPT - 1])
def test_a_later_attempt_without_the_line_mark_is_forged(attempt: int) -> None:
    gate = Gatekeeper(LINE)
    req = request(attempt=attempt)
    refusal = gate.authenticity(req, encoded(req), [("traceparent", b"x")])
    assert refusal is not None
    assert refusal.code == ATTEMPT_FORGED
    assert not refusal.authentic  # dead-lettered: never a completion in the ledger


@pytest.mark.parametrize("attempt", [0, -7, MAX_ATTEMPT])
def test_attempts_out_of_bounds_are_invalid_even_with_a_mark(attempt: int) -> None:
    gate = Gatekeeper(LINE)
    value = encoded(request(attempt=attempt))
    refusal = gate.authenticity(request(attempt=attempt), value, [gate.mark(value)])
    assert refusal is not None
    assert refusal.code == ATTEMPT_INVALID


def test_the_line_mark_admits_a_later_attempt_for_exactly_those_bytes() -> None:
    gate = Gatekeeper(LINE)
    req = request(attempt=2, feedback=["terms.prohibited: free"])
    value = encoded(req)
    assert gate.admit(req, value, [gate.mark(value)]).refusal is None
    # Moved onto other content (say, a squatter's prompt with the same id and attempt): forged.
    other = req.model_copy(update={"prompt_template": "squatter's text"})
    refusal = gate.authenticity(other, encoded(other), [gate.mark(value)])
    assert refusal is not None
    assert refusal.code == ATTEMPT_FORGED
    # A mark made with another secret (a producer guessing) is forged too.
    assert Gatekeeper(b"guess").authenticity(req, value, [gate.mark(value)]) is not None


def test_attempt_one_needs_nothing_without_a_tenants_file() -> None:
    req = request(brand_profile_id=None)
    admission = Gatekeeper(LINE).admit(req, encoded(req), [])
    assert admission.refusal is None
    assert admission.request == req


# --- tenants: credentials and profiles ---------------------------------------------------


def test_a_tenant_with_a_producer_secret_must_sign_its_requests() -> None:
    gate = Gatekeeper(LINE, tenancy())
    req = request(brand_profile_id="acme")
    value = encoded(req)
    assert gate.admit(req, value, [sign_request(value, "acme-key")]).refusal is None
    for headers in ([], [sign_request(value, "wrong-key")], [sign_request(b"other", "acme-key")]):
        refusal = gate.admit(req, value, headers).refusal
        assert refusal is not None
        assert refusal.code == UNAUTHENTICATED
        assert not refusal.authentic
        assert "acme-key" not in refusal.reason


def test_a_tenant_the_file_does_not_name_is_refused() -> None:
    gate = Gatekeeper(LINE, tenancy())
    req = request(tenant="mallory")
    refusal = gate.admit(req, encoded(req), []).refusal
    assert refusal is not None
    assert (refusal.code, refusal.authentic) == (UNKNOWN_TENANT, False)


def test_the_line_mark_stands_in_for_the_producer_signature_of_a_re_generation() -> None:
    gate = Gatekeeper(LINE, tenancy())
    req = request(attempt=2, brand_profile_id="acme")
    value = encoded(req)
    assert gate.admit(req, value, [gate.mark(value)]).refusal is None


def test_another_brands_profile_is_forbidden_but_authentic() -> None:
    gate = Gatekeeper(LINE, tenancy())
    req = request(brand_profile_id="globex")
    value = encoded(req)
    admission = gate.admit(req, value, [sign_request(value, "acme-key")])
    refusal = admission.refusal
    assert refusal is not None
    assert refusal.code == PROFILE_FORBIDDEN
    assert refusal.authentic  # the producer is who it says: a FAILED completion tells it why
    assert admission.request.brand_profile_id is None  # globex's policy is never consulted
    assert "globex" in refusal.reason
    assert "acme-kids" in refusal.reason


def test_omitting_the_profile_gets_the_tenants_default_so_brand_checks_run() -> None:
    gate = Gatekeeper(LINE, tenancy())
    req = request(brand_profile_id=None)
    value = encoded(req)
    admission = gate.admit(req, value, [sign_request(value, "acme-key")])
    assert admission.refusal is None
    assert admission.request.brand_profile_id == "acme"


def test_omitting_the_profile_without_a_default_is_forbidden_when_profiles_are_listed() -> None:
    config = parse_tenants("tenants: {acme: {profiles: [acme]}}", ".yaml")
    gate = Gatekeeper(LINE, resolve(config, {}))
    req = request(brand_profile_id=None)
    refusal = gate.admit(req, encoded(req), []).refusal
    assert refusal is not None
    assert refusal.code == PROFILE_FORBIDDEN


def test_a_tenant_without_profiles_may_name_any_and_without_secret_need_not_sign() -> None:
    gate = Gatekeeper(LINE, tenancy())
    req = request(tenant="open", brand_profile_id="whatever")
    assert gate.admit(req, encoded(req), []).refusal is None


# --- the file ---------------------------------------------------------------------------


def test_the_file_loads_and_callbacks_follow_the_tenants_webhook_secret(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(TENANTS_YAML)
    loaded = load_tenancy(path, KEYS)
    assert loaded is not None
    assert loaded.callback_secret("acme") == (True, "acme-hooks")
    assert loaded.callback_secret("open") == (False, None)
    assert loaded.callback_secret("mallory") == (False, None)
    assert load_tenancy(None, KEYS) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants: {acme: {producer_secret: missing}}", "not set in ASSETLINE_API_KEYS"),
        ("tenants: {acme: {webhook_secret: missing}}", "not set in ASSETLINE_API_KEYS"),
        ("tenants: {acme: {profiles: [a], default_profile: b}}", "not among profiles"),
        ("tenants: {acme: {profile: a}}", "Extra inputs"),
        ("tenants: {}", "at least 1"),
        ("tenants: [", "not valid YAML"),
        ("tenants: {a: {}, a: {}}", "duplicate"),
        ("x: &a {}\ntenants: {t: *a}", "anchor"),
    ],
)
def test_a_bad_tenants_file_fails_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(TenantsFileError, match=message):
        resolve(parse_tenants(text, ".yaml"), KEYS)


def test_a_tenants_file_requires_a_configured_line_secret(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants: {open: {}}")
    with pytest.raises(TenantsFileError, match="line secret 'line'"):
        Gatekeeper.from_settings(Settings(tenants_file=path))
    settings = Settings(tenants_file=path, api_keys={"line": "s3cret"})
    gate = Gatekeeper.from_settings(settings)
    assert gate.tenancy is not None
    assert line_secret(settings, gate.tenancy) == b"s3cret"
    # Without tenancy the public development value stands in (with a warning).
    assert line_secret(Settings(), None) == DEVELOPMENT_LINE_SECRET


# --- id namespaces: one tenant cannot take another's request ids ---------------------------

NAMESPACED_YAML = """
tenants:
  acme: {request_id_prefix: "acme/"}
  globex: {request_id_prefix: "globex/"}
"""


def test_a_tenant_with_an_id_prefix_cannot_send_ids_outside_it() -> None:
    gate = Gatekeeper(LINE, resolve(parse_tenants(NAMESPACED_YAML, ".yaml"), KEYS))
    own = request(request_id="acme/spring-1")
    assert gate.admit(own, encoded(own), []).refusal is None
    for rid in ("globex/spring-1", "spring-1", "acme", "Acme/spring-1"):
        squat = request(request_id=rid)
        refusal = gate.admit(squat, encoded(squat), []).refusal
        assert refusal is not None, rid
        assert (refusal.code, refusal.authentic) == (ID_OUTSIDE_NAMESPACE, False)


def test_overlapping_id_prefixes_are_refused_at_load() -> None:
    text = 'tenants:\n  a: {request_id_prefix: "x"}\n  b: {request_id_prefix: "x/b"}\n'
    with pytest.raises(TenantsFileError, match="starts with"):
        parse_tenants(text, ".yaml")
