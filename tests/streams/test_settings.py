"""Settings: read from ASSETLINE_* variables when built, frozen, and rebuildable in a child."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from streams.settings import DEFAULT_STAGES, STAGES, Settings, settings_env
from tests.support.secure_kafka import CLIENT_KEY_PASSWORD, make_pki


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ASSETLINE_* or KAFKA_BOOTSTRAP from the machine (CI may set KAFKA_BOOTSTRAP)."""
    for name in list(os.environ):
        if name.upper().startswith("ASSETLINE_") or name.upper() == "KAFKA_BOOTSTRAP":
            monkeypatch.delenv(name)


def test_defaults_without_environment() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.stages == DEFAULT_STAGES == STAGES  # notify (webhooks) included
    assert STAGES == ("generate", "validate", "deliver", "review", "notify")
    assert settings.topic_prefix == "assetline"
    assert settings.topic_partitions == 6
    assert settings.blob_dir == Path("var/blobs")


def test_env_prefix_is_assetline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_TOPIC_PREFIX", "staging")
    monkeypatch.setenv("ASSETLINE_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("ASSETLINE_SESSION_TIMEOUT_S", "6.5")
    monkeypatch.setenv("ASSETLINE_BLOB_DIR", "/srv/blobs")
    monkeypatch.setenv("TOPIC_PREFIX", "ignored-without-prefix")
    settings = Settings()
    assert settings.topic_prefix == "staging"
    assert settings.topic_partitions == 12
    assert settings.session_timeout_s == 6.5
    assert settings.blob_dir == Path("/srv/blobs")


def test_env_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("assetline_app_id", "lower-case")
    assert Settings().app_id == "lower-case"


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_APP_ID", "from-env")
    assert Settings(app_id="explicit").app_id == "explicit"


def test_kafka_bootstrap_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker-a:9092,broker-b:9092")
    assert Settings().kafka_bootstrap == "broker-a:9092,broker-b:9092"


def test_prefixed_bootstrap_wins_over_kafka_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "generic:9092")
    monkeypatch.setenv("ASSETLINE_KAFKA_BOOTSTRAP", "specific:9092")
    assert Settings().kafka_bootstrap == "specific:9092"


def test_kafka_bootstrap_as_an_argument() -> None:
    assert Settings(kafka_bootstrap="arg:1").kafka_bootstrap == "arg:1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("generate,validate", ("generate", "validate")),
        (" deliver ", ("deliver",)),
        ("validate, deliver,", ("validate", "deliver")),
        ("generate,validate,deliver,review,notify", STAGES),
    ],
)
def test_stages_are_parsed_from_a_comma_list(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("ASSETLINE_STAGES", raw)
    assert Settings().stages == expected


def test_stages_as_a_tuple_argument() -> None:
    assert Settings(stages=("deliver",)).stages == ("deliver",)


def test_unknown_stage_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_STAGES", "generate,publish")
    with pytest.raises(ValidationError, match=r"unknown stage\(s\) \['publish'\]"):
        Settings()


@pytest.mark.parametrize("raw", ["", " , ,"])
def test_no_stage_at_all_is_rejected(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("ASSETLINE_STAGES", raw)
    with pytest.raises(ValidationError, match="at least one stage"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASSETLINE_TOPIC_PARTITIONS", "0"),
        ("ASSETLINE_WEB_PORT", "70000"),
        ("ASSETLINE_SESSION_TIMEOUT_S", "0"),
        ("ASSETLINE_GENERATE_CONCURRENCY", "not-a-number"),
    ],
)
def test_out_of_range_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.topic_prefix = "changed"  # type: ignore[misc]
    assert settings.topic_prefix == "assetline"


def test_settings_env_names_every_set_field_with_the_prefix() -> None:
    env = settings_env(Settings())
    # None by default: left out, the child defaults to None
    unset = {
        "ASSETLINE_ROUTING_FILE",
        "ASSETLINE_PROFILES_DIR",
        "ASSETLINE_DESTINATIONS_FILE",
        "ASSETLINE_C2PA_CERT_FILE",
        "ASSETLINE_C2PA_TSA_URL",
        "ASSETLINE_SCHEMA_REGISTRY_URL",
        "ASSETLINE_SCHEMA_REGISTRY_AUTH",
        "ASSETLINE_TENANTS_FILE",
        "ASSETLINE_PRODUCER_SECRET_NAME",
        "ASSETLINE_KAFKA_SASL_MECHANISM",
        "ASSETLINE_KAFKA_SASL_USERNAME",
        "ASSETLINE_KAFKA_SASL_PASSWORD",
        "ASSETLINE_KAFKA_SSL_CAFILE",
        "ASSETLINE_KAFKA_SSL_CERTFILE",
        "ASSETLINE_KAFKA_SSL_KEYFILE",
        "ASSETLINE_KAFKA_SSL_KEY_PASSWORD",
        "ASSETLINE_KAFKA_SASL_OAUTH_TOKEN_URL",
        "ASSETLINE_KAFKA_SASL_OAUTH_SCOPE",
        "ASSETLINE_CONSOLE_USERS_FILE",
        "ASSETLINE_CONSOLE_PROXY_USER_HEADER",
        "ASSETLINE_CONSOLE_TRACE_URL",
        "ASSETLINE_OTEL_ENDPOINT",
    }
    assert set(env) == {f"ASSETLINE_{name.upper()}" for name in Settings.model_fields} - unset
    assert env["ASSETLINE_STAGES"] == "generate,validate,deliver,review,notify"
    assert all(isinstance(v, str) for v in env.values())


def test_settings_env_round_trips_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings()
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_settings_env_round_trips_every_changed_knob(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    original = Settings(
        kafka_bootstrap="b1:9092,b2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_oauth_token_url="https://idp.example/oauth2/token",
        kafka_sasl_oauth_scope="kafka",
        kafka_sasl_username="alice",
        kafka_sasl_password=SecretStr("sasl-pass-123"),
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
        kafka_ssl_key_password=SecretStr(CLIENT_KEY_PASSWORD),
        kafka_ssl_check_hostname=False,
        app_id="test-abc",
        topic_prefix="test-abc",
        topic_partitions=3,
        topic_replication=2,
        topic_retention_ms=123_456,
        deadletter_retention_ms=654_321,
        session_timeout_s=6.0,
        heartbeat_interval_s=0.5,
        commit_interval_s=0.25,
        stream_buffer_maxsize=17,
        producer_linger_ms=0,
        stages=("validate", "deliver"),
        generate_concurrency=9,
        stage_max_waiting=321,
        tenant_weights={"acme": 3.0, "beta": 0.5},
        generation_reuse=False,
        generation_record_retention_ms=3_600_000,
        render_threads=3,
        validate_concurrency=7,
        deliver_concurrency=5,
        deliver_destination_concurrency=3,
        deliver_lane_max_waiting=7,
        deliver_defer_base_s=0.5,
        deliver_defer_max_s=9.0,
        deliver_breaker_failures=4,
        deliver_breaker_reset_s=12.5,
        stamp_metadata=False,
        webhook_secret_name="hooks",
        webhook_allow=("127.0.0.1", "10.1.0.0/16"),
        webhook_schedule_s=(0.0, 0.5, 2.0),
        webhook_timeout_s=3.0,
        webhook_origin_concurrency=3,
        webhook_buffer=50,
        check_timeout_s=2.5,
        request_deadline_s=120.0,
        deadline_slack_s=7.5,
        review_deadline_s=600.0,
        deadline_check_interval_s=2.0,
        webhook_max_poll_interval_s=60.0,
        metadata_include_prompt=True,
        blob_dir=tmp_path / "blobs with space",
        delivery_dir=tmp_path / "delivery",
        data_dir=tmp_path / "worker",
        ledger_store="memory",
        blob_cache_bytes=0,
        blob_store="s3",
        blob_s3_endpoint_url="http://127.0.0.1:9000",
        blob_s3_bucket="line-blobs",
        blob_s3_prefix="claims/v1",
        blob_s3_region="eu-west-3",
        blob_s3_access_key_id="AKIABLOBS",
        blob_s3_secret_access_key=SecretStr("blob-secret-789"),
        blob_s3_addressing="virtual",
        blob_s3_timeout_s=4.5,
        blob_sweep_interval_s=0.0,
        blob_sweep_grace_s=60.0,
        max_image_pixels=1_000_000,
        max_image_side=1024,
        max_request_bytes=100_000,
        max_message_bytes=2_000_000,
        max_text_bytes=11,
        max_json_bytes=12,
        max_code_bytes=13,
        max_image_bytes=14,
        web_host="0.0.0.0",
        web_port=0,
        health_check_interval_s=2.0,
        health_check_timeout_s=1.5,
        log_level="info",
        log_format="json",
        log_repeat_interval_s=12.5,
        console_host="0.0.0.0",
        console_port=18086,
        console_users_file=tmp_path / "console-users",
        console_secret=SecretStr("console-secret-456"),
        console_proxy_user_header="X-Forwarded-User",
        console_session_ttl_s=600.0,
        console_cookie_secure=True,
        console_trace_url="https://jaeger.example/trace/{trace_id}",
        otel_endpoint="http://127.0.0.1:4318",
        otel_service_name="assetline-test",
        routing_file=tmp_path / "routing.yaml",
        profiles_dir=tmp_path / "profiles",
        destinations_file=tmp_path / "destinations.yaml",
        tenants_file=tmp_path / "tenants.yaml",
        line_secret_name="line-internal",
        producer_secret_name="acme-producer",
        api_keys={"openai": SecretStr("sk-test-123"), "anthropic": SecretStr("ak-456")},
        c2pa_cert_file=tmp_path / "c2pa.pem",
        c2pa_key_secret="brand-c2pa",
        c2pa_algorithm="ps256",
        c2pa_tsa_url="http://127.0.0.1:3161/tsa",
        schema_registry_url="http://127.0.0.1:8081",
        schema_registry_auth="registry",
        schema_registry_auth_type="bearer",
        schema_registry_timeout_s=2.5,
        subject_strategy="record",
        wire_format_by_topic={"completed": "confluent"},
    )
    changed = {
        name
        for name in Settings.model_fields
        if getattr(original, name) != getattr(Settings(), name)
    }
    assert changed == set(Settings.model_fields), "the test must change every knob"
    env = settings_env(original)
    assert env["ASSETLINE_STAGES"] == "validate,deliver"
    assert env["ASSETLINE_BLOB_DIR"] == str(tmp_path / "blobs with space")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings()
    assert rebuilt == original
    assert rebuilt.stages == ("validate", "deliver")
    assert isinstance(rebuilt.blob_dir, Path)
    assert rebuilt.api_keys["openai"].get_secret_value() == "sk-test-123"
    assert rebuilt.kafka_sasl_password is not None
    assert rebuilt.kafka_sasl_password.get_secret_value() == "sasl-pass-123"
    assert rebuilt.blob_s3_secret_access_key.get_secret_value() == "blob-secret-789"
    assert "blob-secret-789" not in repr(rebuilt)


def test_api_keys_come_from_json_and_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_API_KEYS", '{"openai": "sk-live-secret"}')
    settings = Settings()
    assert settings.api_keys["openai"].get_secret_value() == "sk-live-secret"
    assert "sk-live-secret" not in repr(settings)
    assert "sk-live-secret" not in str(settings.model_dump())
    assert "sk-live-secret" not in settings.model_dump_json()


def test_settings_env_round_trip_ignores_kafka_bootstrap_of_the_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A child started with the parent's KAFKA_BOOTSTRAP still gets the settings' broker."""
    original = Settings(kafka_bootstrap="chosen:9092")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "parent:9092")
    for key, value in settings_env(original).items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


# --- ASSETLINE_API_KEYS: refused with a reason, never echoed (issue 12 #5, #15) ---------------

LEAKY = "sk-live-DO-NOT-ECHO-0123456789"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (f'{{"openai": "{LEAKY}', "is not JSON"),
        (f"openai={LEAKY}", "is not JSON"),
        (f'["{LEAKY}"]', "not an array"),
        (f'"{LEAKY}"', "not a string"),
        (f'{{"openai": ["{LEAKY}"]}}', "the value of 'openai' must be a string, not an array"),
        (f'{{"openai": {{"key": "{LEAKY}"}}}}', "must be a string, not an object"),
        (f'{{"openai": "{LEAKY}\\n"}}', "the value of 'openai' holds a control character"),
        (f'{{"openai": "\\t{LEAKY}"}}', "the value of 'openai' holds a control character"),
        (f'{{"a": "ok-ok-ok-ok", "b": "{LEAKY}\\u0000"}}', "the value of 'b' holds"),
    ],
)
def test_a_mistyped_api_keys_value_names_the_variable_not_the_secret(
    monkeypatch: pytest.MonkeyPatch, raw: str, why: str
) -> None:
    monkeypatch.setenv("ASSETLINE_API_KEYS", raw)
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = str(caught.value)
    assert "ASSETLINE_API_KEYS" in text
    assert why in text
    assert "DO-NOT-ECHO" not in text
    assert "DO-NOT-ECHO" not in repr(caught.value.errors(include_input=False))


def test_the_cli_reports_a_bad_api_keys_value_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import click

    from assetline.cli._common import load_settings

    monkeypatch.setenv("ASSETLINE_API_KEYS", f'{{"openai": "{LEAKY}\\n"}}')
    with pytest.raises(click.ClickException) as caught:
        load_settings()
    message = caught.value.format_message()
    assert "\n" not in message
    assert "'openai'" in message
    assert "control character" in message
    assert "DO-NOT-ECHO" not in message


def test_a_pem_private_key_may_hold_line_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEG\r\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("ASSETLINE_API_KEYS", json.dumps({"c2pa": pem, "openai": LEAKY}))
    keys = Settings().api_keys
    assert keys["c2pa"].get_secret_value() == pem
    assert keys["openai"].get_secret_value() == LEAKY
    with pytest.raises(ValidationError, match="'c2pa' holds a control character"):
        Settings(api_keys={"c2pa": pem.replace("\n", "\x1b", 1)})


def test_other_settings_errors_do_not_echo_their_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_TOPIC_PARTITIONS", "seven-DO-NOT-ECHO")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "topic_partitions" in str(caught.value)
    assert "DO-NOT-ECHO" not in str(caught.value)
