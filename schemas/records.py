"""The line's event contracts, as typed pydantic models.

Eight top-level records travel on the topics (``schemas.FILES`` names their ``.avsc`` files):
``GenerationRequest``, ``RawAsset``, ``ValidatedAsset``, ``AssetCompleted``, ``Alert``,
``ReviewDecision``, ``ReviewItem`` and ``WebhookJob``; the other models here are parts of them.

These models are the single source of truth: the Avro schemas in ``schemas/*.avsc`` (the public
API that other languages use) are generated from them by :mod:`schemas.avro_schema`
(``assetline schemas export``), and a test fails when a committed ``.avsc`` drifts from its model.

Evolution rule: every field added after v1 must be optional (``X | None = None``) or carry a
default, so that the schemas stay BACKWARD compatible (a new reader still reads old records).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.avro_schema import AvroInt

NAMESPACE = "io.assetline.v1"


def utc_now() -> datetime:
    """Millisecond precision, because that is what Avro ``timestamp-millis`` keeps."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class AvroModel(BaseModel):
    """Base of every record: immutable, strict about unknown fields, named in Avro."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
    avro_namespace: ClassVar[str] = NAMESPACE


class AssetKind(StrEnum):
    """What the request asks the provider to make."""

    IMAGE = "IMAGE"
    TEXT = "TEXT"
    JSON = "JSON"
    CODE = "CODE"


class Priority(StrEnum):
    """Which waiting requests are served first: HIGH, then NORMAL, then LOW."""

    # Readers map a symbol they do not know (one added later) to NORMAL instead of failing.
    __avro_default__ = "NORMAL"

    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"


class CompletionStatus(StrEnum):
    """How a request ended; exactly one completion event carries it."""

    DELIVERED = "DELIVERED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    FALLBACK = "FALLBACK"  # added after v1: every provider failed, the alias's fallback was sent


class AlertKind(StrEnum):
    """What an operator is being told about; stable so alerting rules can match it."""

    LATENCY_BUDGET_EXCEEDED = "LATENCY_BUDGET_EXCEEDED"
    COST_BUDGET_EXCEEDED = "COST_BUDGET_EXCEEDED"
    BREAKER_OPENED = "BREAKER_OPENED"
    ALL_PROVIDERS_FAILED = "ALL_PROVIDERS_FAILED"
    # added with the deadline watchdog: a request open past its deadline was completed FAILED
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


class Verdict(StrEnum):
    """PASS and FAIL judge the asset; ERROR means there was no asset to judge."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    ERROR = "ERROR"


class Disposition(StrEnum):
    """Where the validate stage sent an asset; only APPROVED and REJECTED end a request."""

    APPROVED = "APPROVED"
    REGENERATE = "REGENERATE"  # repairable failures: a new attempt with feedback was requested
    REVIEW = "REVIEW"  # a person decides, via the review topics
    REJECTED = "REJECTED"  # final: the deliver stage emits the REJECTED/FAILED completion


class ReviewAction(StrEnum):
    """What a reviewer decided about an asset waiting in review."""

    APPROVE = "APPROVE"
    REJECT = "REJECT"


class ReviewStatus(StrEnum):
    """State of a review item; decided items stay in the table so repeats are recognised."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class ModelSpec(AvroModel):
    """Which model serves the request: a logical alias, or a provider and a pinned version."""

    alias: str | None = Field(None, description="Logical model alias from the routing config.")
    provider: str | None = Field(None, description="Provider name, e.g. 'offline' or 'openai'.")
    version: str | None = Field(
        None, description="Pinned model version, sent to the provider as is."
    )


class Constraints(AvroModel):
    """What the produced asset must satisfy; unset means 'no constraint'."""

    width: Annotated[int, AvroInt] | None = Field(None, description="Image width in pixels.")
    height: Annotated[int, AvroInt] | None = Field(None, description="Image height in pixels.")
    format: str | None = Field(
        None, description="Image format: 'png', 'jpeg' or 'webp' (images only)."
    )
    max_chars: Annotated[int, AvroInt] | None = Field(
        None, description="Maximum length of a text asset, in Unicode code points."
    )
    json_schema: str | None = Field(
        None, description="JSON Schema (draft 2020-12, as JSON text) a JSON asset must match."
    )
    language: str | None = Field(
        None, description="Language of a CODE asset (e.g. 'python') or BCP 47 tag of a text."
    )


class GenerationRequest(AvroModel):
    """A request to generate one asset; published by any service to the requests topic."""

    request_id: str = Field(description="Unique id of this request; the Kafka key everywhere.")
    idempotency_key: str = Field(
        description="The producer's stable key for this intent, carried to the completion so "
        "the producer can match resubmissions to results."
    )
    tenant: str = Field(description="Owning tenant; first level of the delivery layout.")
    campaign_id: str = Field(description="Campaign the asset belongs to.")
    kind: AssetKind = Field(description="What to generate.")
    prompt_template: str = Field(
        description="Prompt with ${name} placeholders filled from 'variables'."
    )
    variables: dict[str, str] = Field(
        default_factory=dict, description="Template variables, e.g. persona and locale."
    )
    model: ModelSpec = Field(default_factory=ModelSpec, description="Model selection.")
    constraints: Constraints = Field(
        default_factory=Constraints, description="What the asset must satisfy."
    )
    brand_profile_id: str | None = Field(
        None, description="Brand profile that selects validation policy and metadata."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Free-form producer metadata, carried through."
    )
    latency_budget_ms: Annotated[int, AvroInt] | None = Field(
        None, description="Upper bound for generation including retries; unset = alias default."
    )
    attempt: Annotated[int, AvroInt] = Field(
        1, description="1 for the first try; re-generations and replays increase it."
    )
    created_at: datetime = Field(
        default_factory=utc_now, description="When the producer created the request (UTC)."
    )
    callback_url: str | None = Field(
        None, description="Webhook to notify on completion (signed; SSRF-guarded)."
    )
    feedback: list[str] = Field(
        default_factory=list,
        description="Validation failures of earlier attempts, appended to the prompt so the "
        "model can repair them; set by the line on re-generation.",
    )
    prior_cost: float = Field(
        0.0, description="USD spent on earlier attempts of this request (generation + judging)."
    )
    priority: Priority = Field(  # added after v0.1.0
        Priority.NORMAL,
        description="Scheduling lane: waiting requests are served HIGH first, then NORMAL, "
        "then LOW; within a lane tenants share by weighted fair queuing.",
    )


class BlobRef(AvroModel):
    """Claim-check for asset bytes, which never travel through Kafka."""

    uri: str = Field(description="Where the bytes are, e.g. file:///var/blobs/ab/cd/<sha256>.")
    sha256: str = Field(description="Hex SHA-256 of the bytes; also the blob's address.")
    size: int = Field(description="Size in bytes.")
    media_type: str = Field(description="IANA media type, e.g. image/png or text/plain.")


class GenerationError(AvroModel):
    """Why generation produced no asset; failures are data, not exceptions."""

    code: str = Field(description="Stable machine-readable code, e.g. 'provider.unsupported'.")
    message: str = Field(description="Human-readable explanation.")
    retryable: bool = Field(False, description="Whether a later retry could succeed.")


class ProviderAttempt(AvroModel):
    """One call (or skipped call) to one provider while serving a request, for the audit trail."""

    provider: str = Field(description="Provider name from the routing config.")
    model: str = Field(description="Model id sent on the wire (the pinned version when set).")
    code: str | None = Field(
        None,
        description="Null when this attempt served the asset; else the error code, "
        "e.g. 'provider.rate_limited', 'breaker.open' or 'cost.budget_exceeded'.",
    )
    message: str | None = Field(None, description="Why the attempt failed; never a secret.")
    latency_ms: float = Field(0.0, description="Wall time of the call, in milliseconds.")
    cost: float = Field(0.0, description="What the call cost, in USD (failed calls can cost).")
    input_tokens: int = Field(0, description="Input tokens billed for this call.")
    output_tokens: int = Field(0, description="Output tokens billed for this call.")
    images: Annotated[int, AvroInt] = Field(0, description="Images billed for this call.")
    purpose: str = Field(
        "generate", description="Why the call was made: 'generate', or 'judge' (AI validator)."
    )
    batched: bool = Field(  # added after v0.1.0
        False,
        description="True when the call went through the provider's batch API (priced at "
        "the alias's batch price; latency_ms is then the wait for the batch).",
    )


class RawAsset(AvroModel):
    """Output of the generate stage: either a blob or an error, never both."""

    request: GenerationRequest = Field(description="The request this asset answers.")
    blob: BlobRef | None = Field(None, description="The generated bytes; null when 'error' is set.")
    error: GenerationError | None = Field(None, description="Set when generation failed.")
    provider: str = Field(description="Provider that served (or failed) the request.")
    model_version: str = Field(description="Exact model version that produced the asset.")
    latency_ms: float = Field(description="Wall time spent generating, in milliseconds.")
    cost: float = Field(0.0, description="Cost of generating, in USD: every attempt summed.")
    generated_at: datetime = Field(default_factory=utc_now, description="When generation ended.")
    alias: str | None = Field(None, description="Routing alias that served the request.")
    attempts: list[ProviderAttempt] = Field(
        default_factory=list, description="Every provider call made or skipped, in order."
    )
    fallback: bool = Field(
        False, description="True when every provider failed and the alias's fallback was used."
    )
    rung: str | None = Field(  # added after v0.1.0
        None,
        description="Which version of its alias made it: 'primary', 'canary' (a share of the "
        "traffic served by a new model first) or 'shadow' (a mirror: validated, never "
        "delivered, never completed); null when the alias has no canary or shadow.",
    )

    @model_validator(mode="after")
    def _blob_xor_error(self) -> RawAsset:
        if (self.blob is None) == (self.error is None):
            raise ValueError("a raw asset carries exactly one of 'blob' and 'error'")
        return self


class CheckResult(AvroModel):
    """One check's outcome; the code is stable so dashboards and policies can refer to it."""

    code: str = Field(description="Stable check code, e.g. 'image.size'.")
    passed: bool = Field(description="Whether the asset passed this check.")
    message: str = Field(description="Human-readable explanation.")
    measured: str | None = Field(None, description="The measured value, for reports.")
    repairable: bool = Field(
        False,
        description="A failure a new generation could fix (e.g. a banned word), as opposed to "
        "one only a person or a fixed request can (e.g. an invalid schema in the request).",
    )


class ValidationReport(AvroModel):
    """Everything the validate stage concluded about one asset."""

    verdict: Verdict = Field(description="PASS, FAIL, or ERROR when there was no asset.")
    checks: list[CheckResult] = Field(default_factory=list, description="Results of every check.")
    duration_ms: float = Field(0.0, description="Time spent validating, in milliseconds.")
    profile: str | None = Field(
        None, description="Brand profile (and campaign override) whose policy judged the asset."
    )
    cost: float = Field(0.0, description="USD spent validating (AI validator calls).")
    attempts: list[ProviderAttempt] = Field(
        default_factory=list, description="AI validator calls, recorded like generation calls."
    )


class ReviewDecision(AvroModel):
    """A person's decision on an asset in review; published to ``<prefix>.review.decisions``."""

    decision_id: str = Field(description="Unique id of this decision (idempotent for the line).")
    request_id: str = Field(description="The request under review; the Kafka key.")
    action: ReviewAction = Field(description="APPROVE delivers the asset; REJECT ends it.")
    reviewer: str = Field(description="Who decided (a user id, recorded in the completion).")
    note: str | None = Field(None, description="Why, in the reviewer's words.")
    decided_at: datetime = Field(default_factory=utc_now, description="When it was decided.")


class ValidatedAsset(AvroModel):
    """A raw asset with its validation report; goes to the approved or rejected topic."""

    raw: RawAsset = Field(description="The asset that was validated.")
    report: ValidationReport = Field(description="The validation outcome.")
    disposition: Disposition | None = Field(
        None,
        description="Where the asset was routed; null (records before review existed) means "
        "APPROVED on the approved topic and REJECTED on the rejected topic.",
    )
    review: ReviewDecision | None = Field(
        None, description="The reviewer's decision, when a person approved or rejected it."
    )


class ReviewItem(AvroModel):
    """An asset waiting for (or decided by) a person; the review table's value."""

    request_id: str = Field(description="The request under review; the table key.")
    status: ReviewStatus = Field(description="PENDING until a decision arrives.")
    asset: ValidatedAsset = Field(description="The failed asset with its full report.")
    queued_at: datetime = Field(default_factory=utc_now, description="When it entered review.")
    decision: ReviewDecision | None = Field(None, description="The decision, once made.")


class AssetCompleted(AvroModel):
    """The one event that ends a request; downstream systems consume these."""

    request_id: str = Field(description="Id of the completed request.")
    idempotency_key: str = Field(description="The request's idempotency key.")
    tenant: str = Field(description="Owning tenant.")
    campaign_id: str = Field(description="Campaign of the request.")
    kind: AssetKind = Field(description="Kind of asset.")
    attempt: Annotated[int, AvroInt] = Field(1, description="Attempt that completed the request.")
    status: CompletionStatus = Field(description="How the request ended.")
    location: str | None = Field(None, description="Where the delivered asset is (URI).")
    sha256: str | None = Field(None, description="Hex SHA-256 of the delivered bytes.")
    media_type: str | None = Field(None, description="Media type of the delivered bytes.")
    reasons: list[str] = Field(
        default_factory=list, description="Why it was rejected or failed; empty when delivered."
    )
    provider: str | None = Field(None, description="Provider that generated the asset.")
    model_version: str | None = Field(None, description="Exact model version used.")
    cost: float = Field(0.0, description="Total cost of the request, in USD.")
    alias: str | None = Field(None, description="Routing alias that served the request.")
    attempts: list[ProviderAttempt] = Field(
        default_factory=list, description="Every provider call made or skipped, in order."
    )
    timings_ms: dict[str, float] = Field(
        default_factory=dict,
        description="Milliseconds per stage: generate, validate, deliver, and total (from "
        "created_at to completed_at).",
    )
    completed_at: datetime = Field(default_factory=utc_now, description="When the line finished.")
    review: ReviewDecision | None = Field(
        None, description="The reviewer's decision when a person approved or rejected the asset."
    )
    rung: str | None = Field(  # added after v0.1.0
        None,
        description="Which version of its alias served the request: 'primary' or 'canary'; "
        "null when the alias has no canary or shadow.",
    )
    external_ids: dict[str, str] = Field(  # added after v0.1.0
        default_factory=dict,
        description="Ids the destination returned for the delivered asset (e.g. a platform's "
        "file id), by name; empty when the destination returns none.",
    )
    sentiment: float | None = Field(  # added after v0.1.0
        None,
        description="Sentiment of delivered copy, from -1 (negative) to 1 (positive): the "
        "text.sentiment check's score (VADER's compound score, or the AI judge's when the "
        "profile asks it for one); for an image, of the copy it was made from (its request's "
        "headline/copy variables); null for other assets and images without copy.",
    )
    sentiment_label: str | None = Field(  # added after v0.1.0
        None,
        description="'negative', 'neutral' or 'positive' (score below -0.05, between, above "
        "0.05); null when sentiment is null.",
    )


class Alert(AvroModel):
    """An operational event on the alerts topic: budgets blown, breakers opened."""

    alert_id: str = Field(description="Unique id of this alert (idempotent for consumers).")
    kind: AlertKind = Field(description="What happened.")
    message: str = Field(description="Human-readable summary; never a secret.")
    request_id: str | None = Field(None, description="The request concerned, if any.")
    tenant: str | None = Field(None, description="Tenant of the request, if any.")
    campaign_id: str | None = Field(None, description="Campaign of the request, if any.")
    alias: str | None = Field(None, description="Routing alias concerned, if any.")
    provider: str | None = Field(None, description="Provider concerned, if any.")
    details: dict[str, str] = Field(
        default_factory=dict, description="Measured values, e.g. budget_ms and elapsed_ms."
    )
    at: datetime = Field(default_factory=utc_now, description="When it happened (UTC).")


class WebhookJob(AvroModel):
    """One webhook call still to make; the schedule lives in Kafka, not in a worker's memory."""

    webhook_id: str = Field(description="Standard Webhooks 'webhook-id': stable per completion.")
    url: str = Field(description="Receiver URL (checked by the SSRF guard before every call).")
    secret_name: str | None = Field(
        None, description="Name of the signing secret in the worker's secrets; null = default."
    )
    delivery_attempt: Annotated[int, AvroInt] = Field(
        1, description="1 for the first call; each retry increases it."
    )
    due_at: datetime = Field(description="Not before this time (UTC).")
    completion: AssetCompleted = Field(description="The completion the webhook announces.")


#: Top-level records: each has an ``.avsc`` file in ``schemas/`` and a codec.
TOP_LEVEL: tuple[type[AvroModel], ...] = (
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    AssetCompleted,
    Alert,
    ReviewDecision,
    ReviewItem,
    WebhookJob,
)
