"""LocalCluster's layout and configs, without starting a JVM (tests/integration/test_cluster.py
starts one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetline.dev.broker import BrokerError, LocalCluster
from assetline.dev.broker._local import parse_properties

PORTS = [(19092, 19093), (19192, 19193), (19292, 19293)]


def test_three_nodes_share_voters_and_replicate_three_ways(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ports=PORTS)
    assert cluster.bootstrap == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"
    configs = [parse_properties(b.render_config()) for b in cluster.brokers]
    assert [c["node.id"] for c in configs] == ["1", "2", "3"]
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    assert {c["controller.quorum.voters"] for c in configs} == {voters}
    assert len({c["log.dirs"] for c in configs}) == 3
    for config in configs:
        assert config["default.replication.factor"] == "3"
        assert config["min.insync.replicas"] == "2"
        assert config["offsets.topic.replication.factor"] == "3"
        assert config["transaction.state.log.replication.factor"] == "3"
        assert config["transaction.state.log.min.isr"] == "2"
    assert cluster.node_of("127.0.0.1:19192") == 2
    assert cluster.node(3) is cluster.brokers[2]
    with pytest.raises(KeyError):
        cluster.node(4)


def test_every_node_is_formatted_with_one_cluster_id(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ports=PORTS)
    cid = cluster.cluster_id()
    assert [b.cluster_id() for b in cluster.brokers] == [cid] * 3
    assert LocalCluster(tmp_path, ports=PORTS).cluster_id() == cid  # kept on disk


def test_a_node_formatted_for_another_cluster_is_refused(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, ports=PORTS)
    node = cluster.brokers[1]
    node.paths.data.mkdir(parents=True)
    (node.paths.data / "meta.properties").write_text("cluster.id=someone-else\n")
    node.paths.cluster_id.write_text("someone-else\n")
    with pytest.raises(BrokerError, match="formatted for another cluster"):
        cluster.cluster_id()


def test_one_node_replicates_once(tmp_path: Path) -> None:
    (config,) = [
        parse_properties(b.render_config()) for b in LocalCluster(tmp_path, nodes=1).brokers
    ]
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("1", "1")
