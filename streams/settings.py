"""The one settings object: read from ``ASSETLINE_*`` variables when built, then passed in.

Nothing reads the environment at import time; tests build their own ``Settings(...)`` with
uuid-named topics and temporary folders.
"""

from __future__ import annotations

import json
import ssl
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

STAGES = ("generate", "validate", "deliver", "review", "notify")
DEFAULT_STAGES = STAGES


class Settings(BaseSettings):
    """Every knob of a worker, with defaults that run the demo on a local broker."""

    # hide_input_in_errors: a mistyped secret must not be echoed in the start-up error
    model_config = SettingsConfigDict(
        env_prefix="ASSETLINE_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("ASSETLINE_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP"),
        description="host:port[,host:port]; KAFKA_BOOTSTRAP is honoured too.",
    )
    app_id: str = Field("assetline", description="Faust app id = consumer group id.")
    topic_prefix: str = Field("assetline", description="Topics are named '<prefix>.<name>'.")
    topic_partitions: int = Field(6, ge=1, description="Partitions of every line topic.")
    topic_replication: int = Field(1, ge=1)
    topic_retention_ms: int = Field(7 * 24 * 3600 * 1000, description="Retention of line topics.")
    deadletter_retention_ms: int = Field(30 * 24 * 3600 * 1000)
    session_timeout_s: float = Field(10.0, gt=0, description="Consumer session timeout.")
    heartbeat_interval_s: float = Field(1.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0, description="How often offsets are committed.")
    stream_buffer_maxsize: int = Field(4096, ge=1)
    producer_linger_ms: int = Field(5, ge=0)

    # Kafka security (streams/kafka_security.py builds every client's options from these)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client (worker, CLI, SDK, tools) talks to the brokers: "
        "PLAINTEXT, SSL (TLS; with kafka_ssl_certfile/keyfile = mutual TLS), SASL_PLAINTEXT "
        "or SASL_SSL (SASL over TLS: managed clusters such as Confluent Cloud, MSK, Aiven).",
    )
    kafka_sasl_mechanism: (
        Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None
    ) = Field(
        None,
        description="SASL mechanism; required with SASL_PLAINTEXT and SASL_SSL. OAUTHBEARER "
        "takes tokens from kafka_sasl_oauth_token_url (OAuth 2 client credentials).",
    )
    kafka_sasl_username: str | None = Field(
        None,
        description="SASL user name (OAUTHBEARER: the OAuth client id); required with "
        "SASL_PLAINTEXT and SASL_SSL.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        description="SASL password (OAUTHBEARER: the OAuth client secret); required with "
        "SASL_PLAINTEXT and SASL_SSL. Never logged.",
    )
    kafka_sasl_oauth_token_url: str | None = Field(
        None,
        description="OAUTHBEARER only: the OAuth 2 token endpoint, asked with the client "
        "credentials grant (kafka_sasl_username:kafka_sasl_password as HTTP Basic auth); a "
        "token is reused until a minute before it expires.",
    )
    kafka_sasl_oauth_scope: str | None = Field(
        None, description="OAUTHBEARER only: the scope asked for with each token, if any."
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates (SSL, "
        "SASL_SSL); unset = the system's trusted CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None,
        description="PEM client certificate (chain) for mutual TLS; needs kafka_ssl_keyfile.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of kafka_ssl_certfile (mutual TLS)."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted kafka_ssl_keyfile. Never logged."
    )
    kafka_ssl_check_hostname: bool = Field(
        True,
        description="Check that a broker's certificate names the host connected to; turn off "
        "only for brokers addressed by a name their certificate lacks.",
    )

    # Stages
    stages: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_STAGES, description="Which stages this worker runs (all of them by default)."
    )
    generate_concurrency: int = Field(
        512,
        ge=1,
        description="Requests a worker works on at once (waiting for a provider slot or in a "
        "call); the calls actually in flight follow each provider's adaptive limit, so this "
        "needs no tuning.",
    )
    stage_max_waiting: int = Field(
        20_000,
        ge=1,
        description="Events a pooled stage takes ahead and holds waiting (ordered by priority "
        "and tenant fair share) before it stops fetching; about 1-2 KB each.",
    )
    tenant_weights: Annotated[
        dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]], NoDecode
    ] = Field(
        default_factory=dict,
        description="Weighted fair queuing share of a tenant among waiting requests of one "
        'priority, as JSON: {"acme": 3, "beta": 1}; each weight > 0, unnamed tenants weigh 1.0.',
    )
    generation_reuse: bool = Field(
        True,
        description="Record each finished generation and AI judge verdict durably before "
        "emitting it and reuse it when a crash, a rebalance or a refetch brings the event round "
        "again, so a finished provider call is never paid twice; off = call the provider again.",
    )
    generation_record_retention_ms: int = Field(
        24 * 3600 * 1000,
        ge=60_000,
        description="How long a finished generation or judge verdict is kept for reuse "
        "(retention of <prefix>.generations and <prefix>.judgements and of the workers' "
        "in-memory copies, about 0.9 KB per request each): "
        "well above the longest a worker may stay down with requests uncommitted.",
    )
    render_threads: int = Field(2, ge=1, description="Threads for CPU-bound rendering.")
    validate_concurrency: int = Field(
        16,
        ge=1,
        description="Assets validated at once, chosen by priority then tenant fair share (an AI "
        "judge call waits on the network; its calls in flight follow the provider's adaptive "
        "limit).",
    )
    deliver_concurrency: int = Field(
        64,
        ge=1,
        description="Deliveries a worker runs at once, chosen by priority then tenant fair "
        "share; one request's events still go one at a time, in order.",
    )
    deliver_destination_concurrency: int = Field(
        8,
        ge=1,
        description="Deliveries in flight per destination (a destination's max_in_flight in the "
        "destinations file overrides it): a slow or dead destination holds back only its own "
        "assets, never another destination's.",
    )
    deliver_lane_max_waiting: int = Field(
        1_000,
        ge=1,
        description="Deliveries a destination may have waiting for its in-flight room; the "
        "next ones are deferred to the .deliver.deferred topic (taken again when due) instead "
        "of filling the deliver stage's waiting room, which stopped it for every tenant.",
    )
    deliver_defer_base_s: float = Field(
        5.0,
        gt=0,
        allow_inf_nan=False,
        description="How long a delivery deferred for a full destination waits before it is "
        "taken again; doubled for each further deferral, up to deliver_defer_max_s.",
    )
    deliver_defer_max_s: float = Field(
        300.0,
        gt=0,
        allow_inf_nan=False,
        description="The longest a deferred delivery waits before it is taken again.",
    )
    deliver_breaker_failures: int = Field(
        5,
        ge=1,
        description="Consecutive destination failures (timeouts, connection errors, 5xx, 429 "
        "after the destination's retries) that open its circuit breaker: its next deliveries "
        "are deferred to .deliver.deferred instead of each costing timeout x attempts.",
    )
    deliver_breaker_reset_s: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="How long an open destination breaker waits before one delivery is let "
        "through as a probe (a success closes it, a failure opens it again).",
    )

    # Inference layer
    routing_file: Path | None = Field(
        None, description="YAML/TOML routing config; unset = everything on the offline provider."
    )
    api_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="Secrets by name (provider API keys, destination credentials), as JSON: "
        '{"openai": "sk-..."}. Never logged; no control characters (a PEM key may hold '
        "line breaks).",
    )

    # Tenancy (agents/tenants.py)
    tenants_file: Path | None = Field(
        None,
        description="YAML/TOML tenants: producer signing secret, allowed and default brand "
        "profiles, webhook secret per tenant; unset = the request's tenant field is trusted.",
    )
    line_secret_name: str = Field(
        "line",
        description="Name in api_keys of the line's internal secret, which marks the requests "
        "the line re-submits itself (re-generation, replay); required with a tenants file.",
    )
    producer_secret_name: str | None = Field(
        None,
        description="Name in api_keys of the key this process signs the requests it submits "
        "with (SDK, submit, campaign, demo): its tenant's producer_secret; unset = unsigned.",
    )

    # Validation gateway
    profiles_dir: Path | None = Field(
        None,
        description="Folder of brand profiles (one YAML/TOML/JSON file each); unset = only the "
        "request's own constraints are checked.",
    )
    check_timeout_s: float = Field(
        10.0,
        gt=0,
        description="CPU time one validation check may use (it runs off the event loop); one "
        "that uses more is a failed check.timeout result. A starved worker does not count: a "
        "check is also given up after 6 times this in wall time, CPU used or not.",
    )

    # Delivery
    destinations_file: Path | None = Field(
        None,
        description="YAML/TOML destinations (filesystem, S3, HTTP) and routes per tenant and "
        "campaign; unset = the filesystem under delivery_dir.",
    )
    stamp_metadata: bool = Field(
        True, description="Stamp provenance (XMP/EXIF/PNG text, or a sidecar) into deliveries."
    )
    metadata_include_prompt: bool = Field(
        False, description="Also stamp the rendered prompt (by default only its SHA-256)."
    )
    c2pa_cert_file: Path | None = Field(
        None,
        description="PEM certificate chain (leaf first) to sign a C2PA manifest into delivered "
        "images; unset = no C2PA. Needs the c2pa extra.",
    )
    c2pa_key_secret: str = Field(
        "c2pa", description="Name in api_keys of the PEM private key of c2pa_cert_file."
    )
    c2pa_algorithm: str = Field(
        "es256",
        description="C2PA signing algorithm, matching the key: es256/384/512, "
        "ps256/384/512 or ed25519.",
    )
    c2pa_tsa_url: str | None = Field(
        None,
        description="RFC 3161 timestamp authority for C2PA signatures; unset = no timestamp "
        "(and no network call per asset).",
    )

    # Deadlines (agents/deliver/watchdog.py): no request stays open for good
    request_deadline_s: float = Field(
        3600.0,
        gt=0,
        description="How long a request without a latency budget may stay open, from its "
        "created_at (or when its latest attempt was written, if later); the deliver stage's "
        "watchdog then completes it FAILED deadline_exceeded and raises an alert. Keep it "
        "well under topic_retention_ms.",
    )
    deadline_slack_s: float = Field(
        300.0,
        ge=0,
        description="Added to a request's own latency_budget_ms (which bounds generation only) "
        "to make its deadline: time for queueing, validation and delivery.",
    )
    review_deadline_s: float = Field(
        3 * 24 * 3600.0,
        gt=0,
        description="How long a request may wait for a person in review, from when it entered "
        "review; replaces the request's deadline while it waits. Keep it under "
        "topic_retention_ms (the watchdog re-reads .review after a restart).",
    )
    deadline_check_interval_s: float = Field(
        10.0, gt=0, description="How often the watchdog looks for requests past their deadline."
    )

    # Webhooks
    webhook_secret_name: str = Field(
        "webhooks", description="Name in api_keys of the default Standard Webhooks secret."
    )
    webhook_allow: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Hosts, IPs or CIDRs webhooks may reach although private (comma list)."
    )
    webhook_schedule_s: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0),
        description="Delay before each webhook attempt, in seconds (comma list); one retry "
        "topic per retry.",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Deadline of one whole webhook call (DNS, connect, headers)."
    )
    webhook_origin_concurrency: int = Field(
        2,
        ge=1,
        description="Webhook calls in flight per receiver origin (scheme://host:port), so one "
        "slow receiver cannot hold up the others.",
    )
    webhook_buffer: int = Field(
        1000,
        ge=1,
        description="Webhook jobs one notify consumer holds while they wait to come due or run; "
        "beyond it its partitions are paused (what waits is re-read after a restart).",
    )
    webhook_max_poll_interval_s: float = Field(
        300.0,
        gt=0,
        description="max.poll.interval of the notify consumers; they poll without pause, "
        "however long a job waits.",
    )

    # Schema registry (Confluent wire format); unset = single-object encoding only, no registry
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible Schema Registry base URL; unset = none."
    )
    schema_registry_auth: str | None = Field(
        None,
        description="Name in api_keys of the registry secret: 'user:password' for basic auth, "
        "a token for bearer auth (see schema_registry_auth_type).",
    )
    schema_registry_auth_type: Literal["basic", "bearer"] = Field("basic")
    schema_registry_timeout_s: float = Field(5.0, gt=0, description="Timeout of one call.")
    subject_strategy: Literal["topic", "record"] = Field(
        "topic",
        description="Subject names: 'topic' = '<topic>-value' (TopicNameStrategy), 'record' = "
        "'<namespace>.<name>' (RecordNameStrategy).",
    )
    wire_format_by_topic: dict[str, Literal["single-object", "confluent"]] = Field(
        default_factory=dict,
        description="Framing written per topic, by short name ('requests', 'completed', ...), "
        'as JSON: {"completed": "confluent"}; default single-object. Both are always read.',
    )

    # Storage
    blob_dir: Path = Field(Path("var/blobs"), description="Content-addressed blob store root.")
    delivery_dir: Path = Field(Path("var/delivery"), description="Filesystem delivery root.")
    data_dir: Path = Field(Path("var/worker"), description="Faust data dir (tables, state).")
    ledger_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="Where the deliver ledger lives: 'rocksdb' on disk under data_dir (a "
        "restart reads only completions newer than its stored offset; give each worker "
        "process its own data_dir), or 'memory' (every start re-reads all of .completed).",
    )
    blob_cache_bytes: int = Field(256 * 1024 * 1024, ge=0, description="In-memory blob cache.")

    # Blob store (streams/blobs.py): where claim checks point, and how long blobs are kept
    blob_store: Literal["local", "s3"] = Field(
        "local",
        description="'local' = files under blob_dir (one host, or a shared filesystem); 's3' = "
        "an S3-compatible bucket every worker reads, so a partition may move between hosts.",
    )
    blob_s3_endpoint_url: str = Field(
        "",
        description="S3-compatible endpoint, e.g. http://minio:9000; empty = AWS "
        "(https://s3.<region>.amazonaws.com).",
    )
    blob_s3_bucket: str = Field("", description="Bucket of the S3 blob store (must exist).")
    blob_s3_prefix: str = Field("blobs", description="Keys are '<prefix>/ab/cd/<sha256>'.")
    blob_s3_region: str = Field("us-east-1", description="SigV4 signing region.")
    blob_s3_access_key_id: str = Field("", description="Access key id of the S3 blob store.")
    blob_s3_secret_access_key: SecretStr = Field(
        SecretStr(""), description="Secret access key of the S3 blob store."
    )
    blob_s3_addressing: Literal["path", "virtual"] = Field(
        "path",
        description="'path' = endpoint/bucket/key (MinIO, most S3-compatible stores); "
        "'virtual' = bucket.endpoint/key.",
    )
    blob_s3_timeout_s: float = Field(
        30.0, gt=0, description="Bound of one S3 call, body included (tried 3 times at most)."
    )
    blob_sweep_interval_s: float = Field(
        3600.0,
        ge=0,
        description="How often a worker deletes blobs no event can still reference; 0 = never "
        "(then run 'assetline blobs sweep' from cron).",
    )
    blob_sweep_grace_s: float = Field(
        24 * 3600.0,
        ge=0,
        description="Kept beyond the longest retention of the topics carrying claim checks "
        "(topic, dead-letter and generation-record retention) before a blob may go.",
    )

    # Limits
    max_image_pixels: int = Field(40_000_000, ge=1, description="Decompression-bomb guard.")
    max_image_side: int = Field(8192, ge=1)
    max_request_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Largest request value (encoded) the generate stage accepts; larger ones are "
        "dead-lettered as request.too_large. Well under max_message_bytes, because every "
        "record derived from a request (raw, validated, review item) carries it whole.",
    )
    max_message_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        description="Largest record the line writes: the producers' max_request_size and the "
        "max.message.bytes of the topics the worker creates, kept equal so that whatever a "
        "producer accepts the broker accepts too (a refusal is then raised at send time).",
    )
    max_text_bytes: int = Field(2 * 1024 * 1024, ge=1, description="Cap of a TEXT asset.")
    max_json_bytes: int = Field(2 * 1024 * 1024, ge=1, description="Cap of a JSON asset.")
    max_code_bytes: int = Field(2 * 1024 * 1024, ge=1, description="Cap of a CODE asset.")
    max_image_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description="Cap of an IMAGE asset's encoded bytes (pixels are capped by "
        "max_image_pixels). Assets over their kind's cap are refused as asset.too_large when "
        "generated, stored and validated.",
    )

    # Web / metrics
    web_host: str = Field("127.0.0.1")
    web_port: int = Field(
        6066, ge=0, le=65535, description="Serves /metrics, /healthz, /readyz; 0 disables web."
    )
    health_check_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often the worker checks that a Kafka broker answers (for /readyz); "
        "a broker loss shows within this plus health_check_timeout_s.",
    )
    health_check_timeout_s: float = Field(
        3.0, gt=0, description="A broker check not answered within this counts as unreachable."
    )
    # Operator console (assetline console): sign-in, sessions, the reverse-proxy option
    console_host: str = Field("127.0.0.1", description="Where 'assetline console' listens.")
    console_port: int = Field(8086, ge=0, le=65535, description="Console port; 0 = any free.")
    console_users_file: Path | None = Field(
        None,
        description="Reviewers allowed to sign in: one 'user:scrypt$...' line each, made by "
        "'assetline console hash-password'. Without it (and without a proxy header) nobody "
        "can sign in.",
    )
    console_secret: SecretStr = Field(
        SecretStr(""),
        description="Signs session cookies and CSRF tokens; set it so sessions survive a "
        "restart and several console processes accept each other's. Empty = a random key per "
        "process.",
    )
    console_proxy_user_header: str | None = Field(
        None,
        description="Trust this request header (e.g. X-Forwarded-User) as the signed-in user. "
        "Only behind a reverse proxy that authenticates users and strips the header from "
        "clients: anyone who can reach the console directly could otherwise send it.",
    )
    console_session_ttl_s: float = Field(
        8 * 3600.0, gt=0, description="A console session ends this long after sign-in."
    )
    console_cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (set it when served over HTTPS)."
    )
    console_trace_url: str | None = Field(
        None,
        description="Link a request's trace id on its timeline page to this URL, '{trace_id}' "
        "replaced by the id (e.g. https://jaeger.example/trace/{trace_id}). Unset = the id is "
        "shown without a link.",
        pattern=r"^https?://.*\{trace_id\}",
    )

    log_level: str = Field("warn")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="'json': one JSON object per log line (time, level, logger, message, and "
        "request_id on lines about a request).",
    )
    log_repeat_interval_s: float = Field(
        60.0,
        gt=0,
        description="A repeated log line (same cause: for Kafka client errors, same message "
        "and error type) is written once per this interval with '(N similar in the last Xs)'; "
        "a broker outage is one WARNING when it starts and one INFO when it ends.",
    )
    # Tracing (streams/tracing.py): traceparent headers always; spans only with this set
    otel_endpoint: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318; '/v1/traces' is "
        "added). Set, with the 'otel' extra installed, each stage and provider call emits a "
        "span; unset (default), OpenTelemetry is never imported.",
    )
    otel_service_name: str = Field(
        "assetline", min_length=1, description="service.name of the spans the worker emits."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys_shape(cls, value: object) -> object:
        return parse_api_keys(value)

    @field_validator("api_keys")
    @classmethod
    def _api_keys_clean(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        check_api_keys(value)
        return value

    @field_validator("tenant_weights", mode="before")
    @classmethod
    def _tenant_weights_json(cls, value: object) -> object:
        if isinstance(value, str):  # a one-line error instead of pydantic-settings' traceback
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f'not JSON ({exc.msg}); e.g. {{"acme": 3, "beta": 1}}') from None
        return value

    @field_validator("stages", mode="before")
    @classmethod
    def _split_stages(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_allow", "webhook_schedule_s", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("webhook_schedule_s")
    @classmethod
    def _schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("webhook_schedule_s needs at least one delay, none negative")
        return value

    @model_validator(mode="after")
    def _defer_delays(self) -> Settings:
        if self.deliver_defer_max_s < self.deliver_defer_base_s:
            raise ValueError(
                f"deliver_defer_max_s ({self.deliver_defer_max_s}) must be at least "
                f"deliver_defer_base_s ({self.deliver_defer_base_s})"
            )
        return self

    @model_validator(mode="after")
    def _request_fits_its_records(self) -> Settings:
        """A request travels whole inside raw/validated records: leave room for the rest."""
        if self.max_request_bytes > self.max_message_bytes // 2:
            raise ValueError(
                f"max_request_bytes ({self.max_request_bytes}) must be at most half of "
                f"max_message_bytes ({self.max_message_bytes})"
            )
        return self

    @model_validator(mode="after")
    def _s3_blob_store(self) -> Settings:
        """The S3 blob store needs a bucket and keys; messages never show the secret."""
        if self.blob_store == "s3":
            missing = [
                name
                for name, value in (
                    ("blob_s3_bucket", self.blob_s3_bucket),
                    ("blob_s3_access_key_id", self.blob_s3_access_key_id),
                    (
                        "blob_s3_secret_access_key",
                        self.blob_s3_secret_access_key.get_secret_value(),
                    ),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"blob_store='s3' needs {', '.join(missing)}")
            endpoint = self.blob_s3_endpoint_url
            if endpoint and not endpoint.startswith(("http://", "https://")):
                raise ValueError("blob_s3_endpoint_url must be an http(s) URL")
        return self

    @model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        """Security settings that fit together, with files that exist (checked at start)."""
        check_kafka_security(self)
        return self

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
        if not value:
            raise ValueError("at least one stage is needed")
        return value


_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


def check_kafka_security(settings: Settings) -> None:
    """Raise ValueError naming what is wrong with the ``kafka_*`` security settings.

    Messages name settings and files, never a secret's value.
    """
    protocol = settings.kafka_security_protocol
    sasl = {
        "kafka_sasl_mechanism": settings.kafka_sasl_mechanism,
        "kafka_sasl_username": settings.kafka_sasl_username,
        "kafka_sasl_password": settings.kafka_sasl_password,
        "kafka_sasl_oauth_token_url": settings.kafka_sasl_oauth_token_url,
        "kafka_sasl_oauth_scope": settings.kafka_sasl_oauth_scope,
    }
    if protocol in _SASL:
        required = ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"]
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            required.append("kafka_sasl_oauth_token_url")
        missing = [name for name in required if not sasl[name]]
        if missing:
            raise ValueError(
                f"kafka_security_protocol={protocol} needs {', '.join(missing)} "
                "(ASSETLINE_" + ", ASSETLINE_".join(name.upper() for name in missing) + ")"
            )
        oauth = [
            name
            for name in ("kafka_sasl_oauth_token_url", "kafka_sasl_oauth_scope")
            if getattr(settings, name) is not None
        ]
        if oauth and settings.kafka_sasl_mechanism != "OAUTHBEARER":
            raise ValueError(f"{', '.join(oauth)} set but kafka_sasl_mechanism is not OAUTHBEARER")
    else:
        stray = [name for name, value in sasl.items() if value is not None]
        if stray:
            raise ValueError(
                f"{', '.join(stray)} set but kafka_security_protocol={protocol}: SASL needs "
                "SASL_PLAINTEXT or SASL_SSL"
            )
    files = {
        "kafka_ssl_cafile": settings.kafka_ssl_cafile,
        "kafka_ssl_certfile": settings.kafka_ssl_certfile,
        "kafka_ssl_keyfile": settings.kafka_ssl_keyfile,
    }
    tls_set = [name for name, value in files.items() if value is not None]
    if settings.kafka_ssl_key_password is not None:
        tls_set.append("kafka_ssl_key_password")
    if protocol not in _TLS:
        if tls_set:
            raise ValueError(
                f"{', '.join(tls_set)} set but kafka_security_protocol={protocol}: TLS needs "
                "SSL or SASL_SSL"
            )
        return
    for name, path in files.items():
        if path is not None and not path.is_file():
            raise ValueError(f"{name}: no such file {str(path)!r}")
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        raise ValueError(
            "kafka_ssl_certfile and kafka_ssl_keyfile go together (mutual TLS needs both)"
        )
    if settings.kafka_ssl_key_password is not None and settings.kafka_ssl_keyfile is None:
        raise ValueError("kafka_ssl_key_password set without kafka_ssl_keyfile")
    key_password = settings.kafka_ssl_key_password
    try:
        load_ssl_context(
            settings.kafka_ssl_cafile,
            settings.kafka_ssl_certfile,
            settings.kafka_ssl_keyfile,
            key_password.get_secret_value() if key_password is not None else None,
            settings.kafka_ssl_check_hostname,
        )
    except ssl.SSLError as exc:
        raise ValueError(
            f"cannot load the TLS files ({', '.join(tls_set) or 'system CAs'}): "
            f"{exc.reason or exc.strerror or type(exc).__name__}"
            + (" (wrong kafka_ssl_key_password?)" if settings.kafka_ssl_keyfile else "")
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot read the TLS files: {exc.strerror}") from None


def load_ssl_context(
    cafile: Path | None,
    certfile: Path | None,
    keyfile: Path | None,
    key_password: str | None,
    check_hostname: bool,
) -> ssl.SSLContext:
    """The TLS context of Kafka clients: trust ``cafile`` (None = the system's CAs), present
    ``certfile``/``keyfile`` when given (mutual TLS)."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None
    )
    context.check_hostname = check_hostname
    if certfile is not None:
        context.load_cert_chain(
            str(certfile), str(keyfile) if keyfile else None, password=key_password
        )
    return context


_API_KEYS_SHAPE = 'a JSON object of name -> secret, e.g. {"openai": "sk-..."}'
_JSON_TYPES: dict[type, str] = {
    list: "an array",
    tuple: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def parse_api_keys(value: object) -> object:
    """ASSETLINE_API_KEYS decoded and shape-checked; errors say what is wrong, never the value.

    Pydantic's own messages quote the input, and a half-typed secret is still a secret.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:  # its message holds a position, not the text
            raise ValueError(
                f"ASSETLINE_API_KEYS is not JSON ({exc.msg}: line {exc.lineno} column "
                f"{exc.colno}); expected {_API_KEYS_SHAPE}"
            ) from None
    if not isinstance(value, dict):
        raise ValueError(f"ASSETLINE_API_KEYS must be {_API_KEYS_SHAPE}, not {_json_type(value)}")
    for name, secret in value.items():
        if not isinstance(secret, str | SecretStr):
            raise ValueError(
                f"ASSETLINE_API_KEYS: the value of {name!r} must be a string, "
                f"not {_json_type(secret)}"
            )
    return value


def check_api_keys(keys: dict[str, SecretStr]) -> None:
    """Refuse secrets with control characters, naming the key only.

    A key pasted with its trailing newline is refused by HTTP at every call, and the error
    text of the HTTP library quotes it (escaped) on its way into events. Line breaks are
    allowed inside a PEM block only (the C2PA private key).
    """
    bad = sorted(name for name, secret in keys.items() if _unprintable(secret.get_secret_value()))
    if bad:
        raise ValueError(
            "ASSETLINE_API_KEYS: the value of "
            + ", ".join(repr(name) for name in bad)
            + " holds a control character (a trailing newline or tab?); remove it"
        )


def _unprintable(secret: str) -> bool:
    allowed = "\r\n" if secret.lstrip().startswith("-----BEGIN ") else ""
    return any(
        unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char not in allowed
        for char in secret
    )


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def settings_env(settings: Settings) -> dict[str, str]:
    """``ASSETLINE_*`` variables that rebuild ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        key = f"ASSETLINE_{name.upper()}"
        if value is None:
            continue  # unset optional knob: the child's default is None too
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):  # dumped as '**********': the child needs the value
            env[key] = secret.get_secret_value()
        elif isinstance(value, list):  # tuples (stages) are comma-separated, as parsed
            env[key] = ",".join(map(str, value))
        elif isinstance(value, dict):  # JSON, as pydantic-settings parses complex fields
            env[key] = json.dumps(_revealed(getattr(settings, name)))
        else:
            env[key] = str(value)
    return env


def _revealed(mapping: dict[str, Any]) -> dict[str, Any]:
    """Secrets in clear, for the child process's environment only (never logged)."""
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in mapping.items()}
