"""Unit tests for the local Kafka broker manager that need neither Java nor Maven."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import assetline.dev.broker._local as local
from assetline.dev.broker import (
    BrokerError,
    BrokerPaths,
    Listener,
    LocalBroker,
    assetline_home,
    free_port,
    free_ports,
    new_cluster_id,
    port_in_use,
    render_config,
    wait_for_metadata,
)
from assetline.dev.broker._local import _pid_alive, _run_sync, parse_properties, tail


def _broker(tmp_path: Path, *, kafka_version: str = "4.1.1") -> LocalBroker:
    port, ctrl = free_ports(2)
    return LocalBroker(
        tmp_path / "root",
        port=port,
        controller_port=ctrl,
        jar_cache=tmp_path / "cache",
        kafka_version=kafka_version,
    )


# ----------------------------------------------------------------- paths and home


def test_paths_live_under_root_and_versioned_cache(tmp_path: Path) -> None:
    paths = BrokerPaths.under(tmp_path / "r", kafka_version="9.9.9", jar_cache=tmp_path / "c")
    assert paths.root == (tmp_path / "r").resolve()
    assert paths.lib == (tmp_path / "c" / "9.9.9" / "lib").resolve()
    for owned in (paths.config, paths.data, paths.log, paths.pid, paths.cluster_id):
        assert owned.parent == paths.root


def test_home_prefers_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSETLINE_HOME", str(tmp_path))
    assert assetline_home() == tmp_path.resolve()
    assert LocalBroker().paths.root == tmp_path.resolve() / "var" / "kafka"
    assert LocalBroker().paths.lib == tmp_path.resolve() / ".cache" / "kafka" / "4.1.1" / "lib"


def test_home_defaults_to_repo_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSETLINE_HOME", raising=False)
    home = assetline_home()
    assert (home / "pyproject.toml").is_file()
    assert Path(local.__file__).resolve().is_relative_to(home)


def test_pom_ships_with_the_package() -> None:
    assert local.POM_PATH.is_file()
    assert "<kafka.version>4.1.1</kafka.version>" in local.POM_PATH.read_text()


def test_ports_must_differ(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalBroker(tmp_path, port=1234, controller_port=1234)


# ----------------------------------------------------------------- config


def test_render_config_single_node_kraft(tmp_path: Path) -> None:
    props = parse_properties(render_config(data_dir=tmp_path, port=1111, controller_port=2222))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:2222"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1111,CONTROLLER://127.0.0.1:2222"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:1111"
    assert props["log.dirs"] == str(tmp_path)
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.coordinator.rebalance.protocols"] == "classic,consumer"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1"


def test_render_config_extra_overrides(tmp_path: Path) -> None:
    text = render_config(
        data_dir=tmp_path, port=1, controller_port=2, extra={"num.partitions": "3", "x.y": "z"}
    )
    props = parse_properties(text)
    assert props["num.partitions"] == "3"
    assert props["x.y"] == "z"
    assert text.count("num.partitions=") == 1


def test_extra_listeners_are_added_beside_plaintext(tmp_path: Path) -> None:
    props = parse_properties(
        render_config(
            data_dir=tmp_path,
            port=1,
            controller_port=2,
            listeners=(Listener("SECURE", 3, "SASL_SSL"), Listener("MTLS", 4, "SSL")),
        )
    )
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SECURE://127.0.0.1:3,MTLS://127.0.0.1:4"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:1,SECURE://127.0.0.1:3,MTLS://127.0.0.1:4"
    )
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"


def test_a_broker_with_listeners_config_and_scram_users(tmp_path: Path) -> None:
    port, ctrl, secure = free_ports(3)
    broker = LocalBroker(
        tmp_path / "root",
        port=port,
        controller_port=ctrl,
        listeners=(Listener("SECURE", secure, "SASL_PLAINTEXT"),),
        config={"listener.name.secure.sasl.enabled.mechanisms": "SCRAM-SHA-256"},
        scram_users=["SCRAM-SHA-256=[name=a,password=b]"],
    )
    assert broker.bootstrap_of("SECURE") == f"127.0.0.1:{secure}"
    with pytest.raises(KeyError):
        broker.bootstrap_of("OTHER")
    props = parse_properties(broker.render_config())
    assert props["listener.name.secure.sasl.enabled.mechanisms"] == "SCRAM-SHA-256"
    assert f"SECURE://127.0.0.1:{secure}" in props["listeners"]
    with pytest.raises(ValueError, match="must differ"):
        LocalBroker(tmp_path, port=1, controller_port=2, listeners=(Listener("X", 1, "SSL"),))
    with pytest.raises(ValueError, match="taken or not a plain word"):
        Listener("CONTROLLER", 5, "SSL")
    with pytest.raises(ValueError, match="unknown security protocol"):
        Listener("X", 5, "TLS")


def test_write_config_follows_ports(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    path = broker.write_config()
    props = parse_properties(path.read_text())
    assert props["advertised.listeners"] == f"PLAINTEXT://{broker.bootstrap}"
    assert props["log.dirs"] == str(broker.paths.data)


def test_parse_properties_skips_comments() -> None:
    assert parse_properties("# c\n! c\n\na=b=c\n k = v \nnoequals\n") == {"a": "b=c", "k": "v"}


# ----------------------------------------------------------------- cluster id


def test_new_cluster_id_is_base64url_uuid() -> None:
    cid = new_cluster_id()
    assert len(cid) == 22
    assert "=" not in cid
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    assert new_cluster_id() != cid


def test_cluster_id_persists(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    first = broker.cluster_id()
    assert broker.paths.cluster_id.read_text().strip() == first
    assert broker.cluster_id() == first
    assert _broker(tmp_path).cluster_id() == first  # a new manager of the same root


def test_cluster_id_recovered_from_formatted_data(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.paths.data.mkdir(parents=True)
    (broker.paths.data / "meta.properties").write_text(
        "version=1\ncluster.id=AbCdEfGhIjKlMnOpQrStUv\n"
    )
    assert broker.is_formatted()
    assert broker.cluster_id() == "AbCdEfGhIjKlMnOpQrStUv"
    assert broker.paths.cluster_id.read_text().strip() == "AbCdEfGhIjKlMnOpQrStUv"


# ----------------------------------------------------------------- ports


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        assert 0 < port < 65536
        assert not port_in_use(port)
    assert 0 < free_port() < 65536


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use(sock.getsockname()[1])


def _leave_time_wait() -> int:
    """A port whose listener closed after closing a connection first (as a stopped broker
    does to its clients): the kernel keeps that connection in TIME_WAIT for a minute."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: it is the one left in TIME_WAIT
            client.recv(1)  # sees the FIN, then closes its side
    return port


def test_time_wait_connections_of_a_stopped_broker_do_not_make_its_port_busy() -> None:
    port = _leave_time_wait()
    # The old probe, without SO_REUSEADDR, is refused:
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert not port_in_use(port)  # Kafka binds with SO_REUSEADDR, so the port is usable


def test_up_refuses_busy_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        broker = LocalBroker(
            tmp_path, port=busy, controller_port=free_port(), jar_cache=tmp_path / "c"
        )
        with pytest.raises(BrokerError, match="already in use"):
            broker.up(timeout=1)
    assert not broker.paths.pid.exists()


def test_wait_for_metadata_times_out_on_closed_port() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerError, match="did not answer"):
        wait_for_metadata(f"127.0.0.1:{free_port()}", timeout=0.5)
    assert time.monotonic() - started < 5


def test_wait_for_metadata_stops_when_process_dies() -> None:
    with pytest.raises(BrokerError, match="stopped"):
        wait_for_metadata(f"127.0.0.1:{free_port()}", timeout=30, alive=lambda: False)


# ----------------------------------------------------------------- status / down


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    status = broker.status()
    assert status.running is False
    assert status.pid is None
    assert status.answering is False
    assert status.bootstrap == broker.bootstrap
    assert broker.down() is False


def test_stale_pid_file_is_ignored_and_removed(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.paths.root.mkdir(parents=True)
    # A live process that is not our broker (this test runner) must never be signalled.
    broker.paths.pid.write_text(f"{os.getpid()}\n")
    assert broker.status().running is False
    assert broker.down() is False
    assert not broker.paths.pid.exists()
    broker.paths.pid.write_text("not a pid\n")
    assert broker.read_pid() is None


def _fake_broker(
    broker: LocalBroker, mark: Path, *, ignore_term: bool = False
) -> subprocess.Popen[bytes]:
    """A sleeping Python process whose argv looks like our broker's (kafka.Kafka + config).

    It writes ``mark`` when it gets SIGTERM: down() reaps it, so its exit code is lost to us.
    """
    code = (
        "import pathlib, signal, sys, time\n"
        "def term(*_):\n"
        f"    pathlib.Path({str(mark)!r}).write_text('TERM')\n"
        f"    {'pass' if ignore_term else 'sys.exit(0)'}\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    broker.write_config()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "kafka.Kafka", str(broker.paths.config)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    proc.stdout.close()
    assert ready == b"ready\n"  # signal handler installed
    broker.paths.pid.write_text(f"{proc.pid}\n")
    return proc


def test_down_stops_a_running_process_group(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    mark = tmp_path / "term"
    proc = _fake_broker(broker, mark)
    try:
        status = broker.status()
        assert status.running is True
        assert status.pid == proc.pid
        assert status.answering is False  # nothing listens on the port
        assert broker.down(timeout=10) is True
        assert mark.read_text() == "TERM"
        assert not _pid_alive(proc.pid)
        assert not broker.paths.pid.exists()
        assert broker.status().running is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_down_escalates_to_sigkill(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = _broker(tmp_path)
    mark = tmp_path / "term"
    proc = _fake_broker(broker, mark, ignore_term=True)
    try:
        started = time.monotonic()
        assert broker.down(timeout=0.5) is True
        assert time.monotonic() - started < 10
        assert mark.read_text() == "TERM"  # it was asked nicely first
        assert "killing it" in caplog.text
        assert not _pid_alive(proc.pid)
        assert not broker.paths.pid.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_refuses_a_second_port_for_a_running_root(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    proc = _fake_broker(broker, tmp_path / "term")
    try:
        other_port, other_ctrl = free_ports(2)
        moved = LocalBroker(
            broker.paths.root,
            port=other_port,
            controller_port=other_ctrl,
            jar_cache=tmp_path / "cache",
        )
        with pytest.raises(BrokerError, match=f"already runs on port {broker.port}"):
            moved.up(timeout=1)
    finally:
        assert broker.down(timeout=10) is True
        proc.wait(timeout=5)


def test_run_sync_works_inside_a_running_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def caller() -> int:
        return _run_sync(answer())  # sync API called from async code: runs in a thread

    assert _run_sync(answer()) == 42
    assert asyncio.run(caller()) == 42


def test_pid_alive_sees_through_zombies() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while _pid_alive(proc.pid):  # unreaped exit = zombie; must read as dead
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.wait()


# ----------------------------------------------------------------- fetch


def _fake_mvn(bin_dir: Path, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "mvn"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


_COPYING_MVN = """
echo run >> "$(dirname "$0")/calls"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
done
mkdir -p "$out" && touch "$out/kafka_2.13-x.jar" "$out/slf4j-simple-1.7.36.jar"
"""


def test_fetch_runs_maven_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _fake_mvn(bin_dir, _COPYING_MVN)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    broker = _broker(tmp_path)
    assert not broker.is_fetched()
    lib = broker.fetch()
    assert lib == broker.paths.lib
    assert sorted(p.name for p in lib.iterdir()) == ["kafka_2.13-x.jar", "slf4j-simple-1.7.36.jar"]
    assert broker.is_fetched()
    # Same version, another root: the cache is shared, maven is not run again.
    other = LocalBroker(tmp_path / "other", port=1, controller_port=2, jar_cache=tmp_path / "cache")
    assert other.fetch() == lib
    assert (bin_dir / "calls").read_text().count("run") == 1
    # A missing jar or a changed pom invalidates the cache.
    (lib / "kafka_2.13-x.jar").unlink()
    assert not broker.is_fetched()
    broker.fetch()
    assert (bin_dir / "calls").read_text().count("run") == 2
    new_pom = tmp_path / "pom.xml"
    new_pom.write_text(local.POM_PATH.read_text() + "<!-- changed -->\n")
    monkeypatch.setattr(local, "POM_PATH", new_pom)
    assert not broker.is_fetched()
    broker.fetch()
    assert (bin_dir / "calls").read_text().count("run") == 3
    assert not list(lib.parent.glob("lib.tmp-*"))


def test_fetch_failure_reports_maven_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _fake_mvn(bin_dir, "echo '[ERROR] Could not resolve org.apache.kafka:kafka_2.13:0.0'\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    broker = _broker(tmp_path, kafka_version="0.0")
    with pytest.raises(BrokerError, match=r"(?s)exit 1.*Could not resolve"):
        broker.fetch()
    assert not broker.is_fetched()
    assert not broker.paths.lib.exists()


def test_fetch_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="`mvn` not found"):
        _broker(tmp_path).fetch()


def test_up_without_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BrokerError, match="`java` not found"):
        _broker(tmp_path).up(timeout=1)


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert "does not exist" in tail(log)
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"


def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid as uuid_module

    # 0xf8 as the first byte makes base64url start with '-'; the next draw is fine.
    draws = iter([uuid_module.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid_module.UUID(int=1)])
    monkeypatch.setattr("assetline.dev.broker._local.uuid.uuid4", lambda: next(draws))
    cid = new_cluster_id()
    assert not cid.startswith("-")
    assert len(cid) == 22
