"""A real Kafka (KRaft) broker run from Maven Central jars, without Docker: one node
(:class:`LocalBroker`) or a replicated cluster of several (:class:`LocalCluster`).

See :mod:`assetline.dev.broker._local` for where files live and why.
"""

from assetline.dev.broker._cluster import LocalCluster
from assetline.dev.broker._local import (
    DEFAULT_KAFKA_VERSION,
    HOME_ENV,
    POM_PATH,
    BrokerError,
    BrokerPaths,
    BrokerStatus,
    Listener,
    LocalBroker,
    assetline_home,
    default_jar_cache,
    default_root,
    file_lock,
    free_port,
    free_ports,
    new_cluster_id,
    port_in_use,
    probe_metadata,
    render_config,
    wait_for_metadata,
)

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "HOME_ENV",
    "POM_PATH",
    "BrokerError",
    "BrokerPaths",
    "BrokerStatus",
    "Listener",
    "LocalBroker",
    "LocalCluster",
    "assetline_home",
    "default_jar_cache",
    "default_root",
    "file_lock",
    "free_port",
    "free_ports",
    "new_cluster_id",
    "port_in_use",
    "probe_metadata",
    "render_config",
    "wait_for_metadata",
]
