"""The root of every exception assetline raises.

Each exception carries a stable ``code`` (the same dotted codes that completions, dead-letter
headers and alerts carry), so a caller can branch on ``err.code`` instead of on class names,
and ``except AssetlineError`` catches everything the project raises on purpose.

It lives with the contracts because the codes are part of them, and because the lowest layer
is the only place every other layer may import from.

Every class keeps the builtin base it had before the root existed (``ConfigError`` is still a
``ValueError``, ``ReplayStalledError`` still a ``KafkaError``), so no ``except`` clause changed
meaning. ``code`` is a class attribute; ``ProviderError``, ``RoutingError``, ``SinkError`` and
``UnsafeDestination`` also take one per instance (``provider.timeout``, ``ssrf.metadata``, ...),
and the class value below is only their default. ``tests/schemas/test_errors.py`` renders both
blocks from the classes that exist and fails when they drift.

Exception tree (class, code)::

    AssetlineError                       assetline.error
    ├── SchemaGenerationError            schema.no_avro_mapping
    ├── ReleaseError                     schemas.release
    ├── BlobError                        blob.error
    │   ├── BlobMissingError             blob.missing
    │   ├── BlobCorruptError             blob.corrupt
    │   ├── BlobTooLargeError            asset.too_large
    │   └── BlobUnavailableError         blob.unavailable
    ├── CodecError                       codec.error
    │   ├── MalformedMessageError        codec.malformed
    │   │   └── UnsupportedFramingError  codec.unsupported_framing
    │   ├── UnknownSchemaError           codec.unknown_schema
    │   │   └── UnknownSchemaIdError     codec.unknown_schema_id
    │   ├── RecordValidationError        codec.invalid_record
    │   └── RegistryError                registry.unavailable
    ├── _Unsafe                          codec.fast_path_unproven
    ├── ConfigError                      config.invalid
    │   ├── ChannelsFileError            alerts.bad_channels_file
    │   ├── DestinationsFileError        config.destinations_file
    │   ├── MissingKeyError              config.missing_key
    │   ├── RoutingFileError             config.routing_file
    │   ├── ProfileFileError             config.profile_file
    │   └── TenantsFileError             config.tenants_file
    ├── _DuplicateJsonKey                config.duplicate_key
    ├── KafkaUnreachable                 kafka.unreachable
    ├── _NotFound                        registry.not_found
    ├── TopicMismatchError               topics.mismatch
    ├── UnsafeNameError                  deliver.unsafe_name
    ├── MetadataError                    deliver.metadata
    ├── SinkError                        deliver.failed
    ├── UnpinnedRequest                  egress.unpinned_request
    ├── UnsafeDestination                ssrf.refused
    ├── ProviderError                    provider.error
    ├── _SchemaTooLarge                  provider.bad_constraints
    ├── _DocumentTooLarge                asset.too_large
    ├── RoutingError                     routing.error
    ├── RateLimitTimeout                 ratelimit.wait_exceeds_budget
    ├── DisabledRecordError              webhook.bad_disabled_record
    ├── InvalidSecret                    webhook.invalid_secret
    ├── UnsupportedPattern               constraints.unsupported_pattern
    ├── JudgeConfigError                 config.judge
    ├── CampaignInputError               campaign.bad_input
    ├── SubmitError                      submit.not_acknowledged
    ├── ConsoleAuthError                 console.auth
    ├── BrokerError                      broker.error
    ├── CompareError                     models.bad_since
    ├── PolicyCheckError                 policy.check
    ├── RangeError                       replay.bad_range
    ├── ReplayStalledError               replay.stalled
    ├── TopicChoiceError                 replay.bad_topic
    ├── ReviewError                      review.refused
    │   ├── NoReviewItemError            review.no_item
    │   └── AlreadyDecidedError          review.already_decided
    ├── RequestOptionError               submit.bad_option
    ├── RequestFileError                 submit.bad_request_file
    ├── UnknownTopicError                tail.unknown_topic
    └── DisabledTopicMissingError        webhook.disabled_topic_missing

Where each is defined (module, classes)::

    schemas.avro_schema                               SchemaGenerationError
    schemas.catalog                                   ReleaseError
    schemas.errors                                    AssetlineError
    streams.blobs                                     BlobError, BlobMissingError, BlobCorruptError,
                                                      BlobTooLargeError, BlobUnavailableError
    streams.codecs._errors                            CodecError, MalformedMessageError,
                                                      UnknownSchemaError, RecordValidationError,
                                                      UnknownSchemaIdError, UnsupportedFramingError,
                                                      RegistryError
    streams.codecs._fast                              _Unsafe
    streams.config_files                              ConfigError, _DuplicateJsonKey
    streams.kafka_security                            KafkaUnreachable
    streams.registry.client                           _NotFound
    streams.topics                                    TopicMismatchError
    agents.alerts.channels                            ChannelsFileError
    agents.deliver.destinations                       DestinationsFileError
    agents.deliver.layout                             UnsafeNameError
    agents.deliver.metadata.errors                    MetadataError
    agents.deliver.sinks._base                        SinkError
    agents.egress.pinning                             UnpinnedRequest
    agents.egress.ssrf                                UnsafeDestination
    agents.inference.providers.base                   ProviderError
    agents.inference.providers.offline.json_document  _SchemaTooLarge, _DocumentTooLarge
    agents.inference.routing.adapters                 MissingKeyError
    agents.inference.routing.config                   RoutingFileError
    agents.inference.routing.plan                     RoutingError
    agents.inference.routing.rate_limit               RateLimitTimeout
    agents.notify.disabled                            DisabledRecordError
    agents.notify.signing                             InvalidSecret
    agents.policy.loader                              ProfileFileError
    agents.tenants                                    TenantsFileError
    agents.validate.checks.structured                 UnsupportedPattern
    agents.validate.gateway                           JudgeConfigError
    assetline.campaign.expand                         CampaignInputError
    assetline.client                                  SubmitError
    assetline.console.auth                            ConsoleAuthError
    assetline.dev.broker._local                       BrokerError
    assetline.models_compare                          CompareError
    assetline.policy_check.run                        PolicyCheckError
    assetline.replay.ranges                           RangeError
    assetline.replay.republish                        ReplayStalledError
    assetline.replay.topics                           TopicChoiceError
    assetline.review                                  ReviewError, NoReviewItemError,
                                                      AlreadyDecidedError
    assetline.submit                                  RequestOptionError, RequestFileError
    assetline.tail                                    UnknownTopicError
    assetline.webhooks                                DisabledTopicMissingError
"""

from __future__ import annotations


class AssetlineError(Exception):
    """Base of every project exception; ``code`` is stable and machine-readable.

    Declared as a plain attribute with a class default (not a ``ClassVar``) because some
    subclasses set a more specific code on each instance.
    """

    code: str = "assetline.error"
