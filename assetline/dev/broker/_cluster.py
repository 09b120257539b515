"""Several KRaft nodes from the same jars: a replicated Kafka cluster on one machine.

Each node is a :class:`LocalBroker` (broker and controller in one JVM) with its own
``node.id``, ports and data folder under ``<root>/node-<id>``; all share one
``controller.quorum.voters`` list and one cluster id, with which every node's storage is
formatted. Replication defaults follow the node count: three nodes give replication factor 3
and ``min.insync.replicas=2`` for new topics and the internal ones (offsets, transactions).

A KRaft quorum needs a majority of the voters before any node answers metadata, so
:meth:`LocalCluster.up` starts the nodes together; afterwards each node can be killed
(``kill -9``), stopped cleanly and started again on its own while the others serve.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Mapping
from pathlib import Path

from assetline.dev.broker._local import (
    DEFAULT_KAFKA_VERSION,
    BrokerError,
    LocalBroker,
    default_root,
    free_ports,
    new_cluster_id,
)

log = logging.getLogger(__name__)


class LocalCluster:
    """``nodes`` combined broker+controller processes on loopback, node ids 1..nodes."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        nodes: int = 3,
        heap: str = "320m",
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        jar_cache: Path | None = None,
        host: str = "127.0.0.1",
        ports: list[tuple[int, int]] | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """``ports``: (client port, controller port) per node, free ports if omitted;
        ``config``: more ``server.properties`` keys for every node."""
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if ports is None:
            flat = free_ports(2 * nodes, host)
            ports = [(flat[2 * i], flat[2 * i + 1]) for i in range(nodes)]
        if len(ports) != nodes:
            raise ValueError(f"{nodes} nodes need {nodes} port pairs, got {len(ports)}")
        self.root = (root or default_root().with_name("kafka-cluster")).expanduser().resolve()
        self.replication = min(3, nodes)
        self.min_insync = max(1, self.replication - 1)
        voters = ",".join(f"{i + 1}@{host}:{ctrl}" for i, (_, ctrl) in enumerate(ports))
        common = {
            "controller.quorum.voters": voters,
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": str(self.min_insync),
            "offsets.topic.replication.factor": str(self.replication),
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(self.min_insync),
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": str(self.min_insync),
            **(config or {}),
        }
        self.brokers = [
            LocalBroker(
                self.root / f"node-{i + 1}",
                port=port,
                controller_port=ctrl,
                kafka_version=kafka_version,
                heap=heap,
                jar_cache=jar_cache,
                host=host,
                config={**common, "node.id": str(i + 1)},
            )
            for i, (port, ctrl) in enumerate(ports)
        ]

    def __repr__(self) -> str:
        return f"LocalCluster(root={self.root!s}, bootstrap={self.bootstrap!r})"

    @property
    def bootstrap(self) -> str:
        """Every node's ``host:port``, comma-separated, for clients."""
        return ",".join(b.bootstrap for b in self.brokers)

    def node(self, node_id: int) -> LocalBroker:
        """The broker with ``node.id`` ``node_id`` (1-based)."""
        if not 1 <= node_id <= len(self.brokers):
            raise KeyError(node_id)
        return self.brokers[node_id - 1]

    def node_of(self, bootstrap: str) -> int:
        """The node id listening on ``host:port``."""
        for i, broker in enumerate(self.brokers):
            if broker.bootstrap == bootstrap:
                return i + 1
        raise KeyError(bootstrap)

    def cluster_id(self) -> str:
        """The shared cluster id (``<root>/cluster.id``), created on first use and copied to
        each node's own id file so :meth:`LocalBroker.format_storage` formats with it."""
        path = self.root / "cluster.id"
        try:
            cid = path.read_text().strip()
        except FileNotFoundError:
            cid = ""
        if not cid:
            cid = new_cluster_id()
            self.root.mkdir(parents=True, exist_ok=True)
            path.write_text(cid + "\n")
        for broker in self.brokers:
            broker.paths.root.mkdir(parents=True, exist_ok=True)
            own = broker.paths.cluster_id
            if not own.is_file() or own.read_text().strip() != cid:
                if broker.is_formatted():
                    raise BrokerError(f"{broker.paths.data} is formatted for another cluster")
                own.write_text(cid + "\n")
        return cid

    def up(self, timeout: float = 120.0) -> str:
        """Start every node that is not running (together: the quorum needs a majority);
        return the bootstrap of all of them."""
        self.brokers[0].fetch()  # once, before the nodes race for the shared jar cache
        self.cluster_id()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.brokers)) as pool:
            futures = [pool.submit(b.up, timeout) for b in self.brokers]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            self.down(timeout=10.0)
            raise BrokerError(f"{len(failed)} of {len(self.brokers)} nodes failed: {failed[0]}")
        log.info("Kafka cluster of %d nodes on %s", len(self.brokers), self.bootstrap)
        return self.bootstrap

    def start(self, node_id: int, timeout: float = 120.0) -> str:
        """Start one node (the others must hold the quorum); return its ``host:port``."""
        return self.node(node_id).up(timeout)

    def stop(self, node_id: int, timeout: float = 20.0) -> bool:
        """Stop one node cleanly (SIGTERM: controlled shutdown moves its leaderships)."""
        return self.node(node_id).down(timeout)

    def kill(self, node_id: int) -> bool:
        """Kill one node's JVM (SIGKILL), as a crash or a lost host would."""
        return self.node(node_id).kill()

    def down(self, timeout: float = 20.0) -> None:
        """Stop every node, together: a node left without a quorum cannot finish a controlled
        shutdown, so the nodes that outlast ``timeout`` are killed."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.brokers)) as pool:
            for future in [pool.submit(b.down, timeout) for b in self.brokers]:
                future.result()
