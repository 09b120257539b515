"""A real single-node Apache Kafka (KRaft) broker, run from plain jars without Docker.

Why: the line's integration tests and local development need a genuine broker (transactions,
consumer groups, the real protocol), and Docker is not available everywhere. Maven Central is,
so the broker jars are resolved from ``pom.xml`` beside this module and run with the local
``java``. Everything a broker owns (config, data, log, pid file, cluster id) lives under one
root folder, so several brokers - e.g. one per test session - can coexist on different ports
while sharing one jar cache per Kafka version.

Where the defaults live (see :func:`assetline_home`): ``$ASSETLINE_HOME`` if set, otherwise
the nearest parent of this module that holds a ``pyproject.toml`` (the repo checkout),
otherwise the current directory. Broker state goes to ``<home>/var/kafka`` and jars to
``<home>/.cache/kafka/<version>/lib``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from schemas.errors import AssetlineError

log = logging.getLogger(__name__)

DEFAULT_KAFKA_VERSION = "4.1.1"
POM_PATH = Path(__file__).with_name("pom.xml")
HOME_ENV = "ASSETLINE_HOME"

_T = TypeVar("_T")
_MAIN_CLASS = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_LOG_TAIL_LINES = 40


class BrokerError(AssetlineError):
    """The local broker could not be fetched, started, reached or stopped."""

    code = "broker.error"


def assetline_home() -> Path:
    """Folder that holds ``var/`` and ``.cache/`` by default.

    ``$ASSETLINE_HOME`` wins so an installed (non-editable) package can still share state;
    otherwise the repo checkout this module lives in, found by its ``pyproject.toml``.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def default_root() -> Path:
    """Default broker root: ``<home>/var/kafka``."""
    return assetline_home() / "var" / "kafka"


def default_jar_cache() -> Path:
    """Default jar cache root, shared by every broker: ``<home>/.cache/kafka``."""
    return assetline_home() / ".cache" / "kafka"


@dataclass(frozen=True)
class BrokerPaths:
    """Every file a broker owns, derived from its root and the shared jar cache.

    Kept in one place so the CLI, tests and cleanup agree on what ``down``/``rm -r`` touch.
    """

    root: Path
    lib: Path  # the jars, shared across brokers of one Kafka version
    fetch_marker: Path  # written last by fetch(); its absence means "fetch again"
    fetch_lock: Path
    config: Path
    data: Path
    log: Path
    pid: Path
    cluster_id: Path

    @classmethod
    def under(
        cls,
        root: Path,
        *,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        jar_cache: Path | None = None,
    ) -> BrokerPaths:
        """Lay out a broker under ``root``; jars under ``jar_cache/<version>/lib``."""
        root = root.expanduser().resolve()
        version_dir = (jar_cache or default_jar_cache()).expanduser().resolve() / kafka_version
        return cls(
            root=root,
            lib=version_dir / "lib",
            fetch_marker=version_dir / "fetched.json",
            fetch_lock=version_dir / ".fetch.lock",
            config=root / "server.properties",
            data=root / "data",
            log=root / "broker.log",
            pid=root / "broker.pid",
            cluster_id=root / "cluster.id",
        )


@dataclass(frozen=True)
class Listener:
    """A client listener beside the PLAINTEXT one, e.g. ``Listener("SECURE", 9094, "SASL_SSL")``.

    The PLAINTEXT listener always stays (inter-broker traffic and the start-up probe use it);
    the listener's own settings (TLS files, SASL mechanisms and JAAS) go in the broker's
    ``config`` under ``listener.name.<name lower-case>.``.
    """

    name: str
    port: int
    protocol: str  # SSL, SASL_PLAINTEXT or SASL_SSL (or PLAINTEXT)

    def __post_init__(self) -> None:
        if self.name.upper() in ("PLAINTEXT", "CONTROLLER") or not self.name.isidentifier():
            raise ValueError(f"listener name {self.name!r} is taken or not a plain word")
        if self.protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ValueError(f"unknown security protocol {self.protocol!r}")


@dataclass(frozen=True)
class BrokerStatus:
    """What ``status`` saw: a live process and whether it serves metadata."""

    running: bool
    pid: int | None
    bootstrap: str
    answering: bool


# --------------------------------------------------------------------------- helpers


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free a moment ago.

    The sockets stay bound until all are picked, so the kernel cannot hand out the same
    port twice (which two plain ``free_port()`` calls may do).
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (racy by nature; good enough for tests)."""
    return free_ports(1, host)[0]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something already listens on (or holds) ``host:port``.

    Checked before starting so a clash is reported as such, not as a dead JVM. The probe sets
    SO_REUSEADDR as Kafka's own listener does (Java sets it on server sockets): connections
    of a broker just stopped linger in TIME_WAIT for a minute, and they must not count, or
    ``broker down`` then ``broker up`` fails for that long although Kafka would bind fine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def new_cluster_id() -> str:
    """A KRaft cluster id: base64url of 16 random bytes without padding (22 chars).

    Never starting with '-', like Kafka's own ``Uuid.randomUuid()``: the storage tool's
    argument parser would read such an id as an option (seen here: one run in ~64 failed).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def render_config(
    *,
    data_dir: Path,
    port: int,
    controller_port: int,
    host: str = "127.0.0.1",
    node_id: int = 1,
    extra: Mapping[str, str] | None = None,
    listeners: Sequence[Listener] = (),
) -> str:
    """``server.properties`` for one combined broker+controller node on loopback.

    Replication factors are 1 because there is one node; auto topic creation is off so
    tests catch a missing topic declaration instead of silently creating one. ``listeners``
    are added beside PLAINTEXT (see :class:`Listener`); ``extra`` overrides or adds keys.
    """
    more = "".join(f",{x.name}://{host}:{x.port}" for x in listeners)
    settings: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{node_id}@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}{more}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}{more}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        + "".join(f",{x.name}:{x.protocol}" for x in listeners),
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "log.retention.hours": "168",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.coordinator.rebalance.protocols": "classic,consumer",
    }
    settings.update(extra or {})
    lines = ["# Written by assetline.dev.broker.LocalBroker on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Minimal ``key=value`` reader, enough for the files this module writes."""
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        result[key.strip()] = value.strip()
    return result


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Last ``lines`` lines of a text file, or a note that it is missing."""
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(content.splitlines()[-lines:])


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            "`java` not found (set JAVA_HOME or put java on PATH); the local Kafka broker "
            "needs a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`."
        )
    return found


def _find_mvn() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise BrokerError(
            "`mvn` not found on PATH; it is needed once to fetch the Kafka jars from Maven "
            "Central, e.g. `apt-get install maven`."
        )
    return found


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process.

    A broker started by *this* Python process stays a zombie after it exits until reaped,
    and ``kill(pid, 0)`` still succeeds on zombies, so reap first.
    """
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped = 0  # not our child: someone else reaps it
    if reaped == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # Field 3 is the state; the command name in field 2 may contain spaces.
        state = stat.read_text().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    return True


def _cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid`` from /proc, or None where /proc is unavailable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _spawn_detached(cmd: list[str], log_path: Path) -> int:
    """Start ``cmd`` in its own session with stdout+stderr to ``log_path``; return its pid.

    posix_spawn rather than Popen: the broker must outlive the caller (the CLI exits right
    after ``up``), and a Popen object left running warns on garbage collection. Exit status
    is collected by :func:`_pid_alive`. Its own session (and so process group) lets ``down``
    signal the JVM and anything it forked in one go, and keeps terminal Ctrl-C away from it.
    """
    return os.posix_spawn(
        cmd[0],
        cmd,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
        setsigmask=(),  # nothing blocked, whatever thread calls us
        # Ignored dispositions survive exec; make sure SIGTERM etc. reach the JVM.
        setsigdef=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ),
    )


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from sync code, even when a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _describe_cluster(bootstrap: str, budget: float) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.kafka_security import client_kwargs

    timeout_ms = max(1000, int(budget * 1000))
    admin = AIOKafkaAdminClient(**client_kwargs(bootstrap), request_timeout_ms=timeout_ms)
    try:
        async with asyncio.timeout(budget):
            await admin.start()
            result: dict[str, Any] = await admin.describe_cluster()
            return result
    finally:
        await admin.close()


def _tcp_open(bootstrap: str, timeout: float) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def probe_metadata(bootstrap: str, timeout: float = 5.0) -> bool:
    """One metadata round trip: True if the broker lists at least one live broker.

    A listening socket is not enough: the KRaft broker only reports itself in metadata once
    it is registered and unfenced, i.e. once it can actually host topics.
    """
    if not _tcp_open(bootstrap, min(timeout, 2.0)):
        return False  # cheap pre-check; spares aiokafka's error logs while the JVM boots
    try:
        cluster = _run_sync(_describe_cluster(bootstrap, timeout))
    except Exception as exc:  # any failure means "not ready yet"
        log.debug("metadata probe of %s failed: %r", bootstrap, exc)
        return False
    return bool(cluster.get("brokers"))


def wait_for_metadata(
    bootstrap: str,
    timeout: float,
    *,
    interval: float = 0.25,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until ``bootstrap`` answers metadata with a live broker.

    ``alive`` (a no-arg callable) lets the caller abort early, e.g. when the JVM died.
    Raises BrokerError on timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"Kafka at {bootstrap} did not answer metadata within {timeout}s")
        if alive is not None and not alive():
            raise BrokerError(f"Kafka at {bootstrap} stopped while waiting for metadata")
        if probe_metadata(bootstrap, timeout=min(5.0, max(remaining, 0.5))):
            return
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock so parallel sessions fetch a download only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- broker


class LocalBroker:
    """One Kafka broker+controller process on loopback, owned through files under ``root``.

    All state is on disk (pid file, cluster id, data), so a different Python process - e.g.
    ``assetline broker down`` after ``assetline broker up`` - can manage the same broker.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        port: int = 9092,
        controller_port: int = 9093,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
        heap: str = "768m",
        jar_cache: Path | None = None,
        host: str = "127.0.0.1",
        listeners: Sequence[Listener] = (),
        config: Mapping[str, str] | None = None,
        scram_users: Sequence[str] = (),
    ) -> None:
        """``root`` defaults to :func:`default_root`; ``jar_cache`` is the cache root that
        holds ``<version>/lib`` (default :func:`default_jar_cache`).

        ``listeners``: client listeners beside PLAINTEXT (TLS, SASL); ``config``: more
        ``server.properties`` keys (e.g. a listener's TLS files and SASL JAAS config);
        ``scram_users``: SCRAM credentials created when the storage is formatted, as Kafka's
        storage tool takes them: ``"SCRAM-SHA-256=[name=alice,password=alice-secret]"``.
        """
        ports = [port, controller_port, *(x.port for x in listeners)]
        if len(set(ports)) != len(ports):
            raise ValueError("port, controller_port and the listeners' ports must differ")
        self.paths = BrokerPaths.under(
            root or default_root(), kafka_version=kafka_version, jar_cache=jar_cache
        )
        self.port = port
        self.controller_port = controller_port
        self.kafka_version = kafka_version
        self.heap = heap
        self.host = host
        self.listeners = tuple(listeners)
        self.config = dict(config or {})
        self.scram_users = tuple(scram_users)

    def __repr__(self) -> str:
        return f"LocalBroker(root={self.paths.root!s}, bootstrap={self.bootstrap!r})"

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"{self.host}:{self.port}"

    def bootstrap_of(self, listener: str) -> str:
        """``host:port`` of the extra listener named ``listener``."""
        for x in self.listeners:
            if x.name == listener:
                return f"{self.host}:{x.port}"
        raise KeyError(listener)

    @property
    def _ports(self) -> tuple[int, ...]:
        return (self.port, self.controller_port, *(x.port for x in self.listeners))

    # ------------------------------------------------------------------ fetch

    def _pom_digest(self) -> str:
        return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()

    def is_fetched(self) -> bool:
        """True if the jar cache is complete for this version and the current pom."""
        try:
            marker = json.loads(self.paths.fetch_marker.read_text())
        except (OSError, ValueError):
            return False
        return (
            isinstance(marker, dict)
            and marker.get("pom_sha256") == self._pom_digest()
            and marker.get("kafka_version") == self.kafka_version
            and self.paths.lib.is_dir()
            and all((self.paths.lib / jar).is_file() for jar in marker.get("jars", []))
        )

    def fetch(self) -> Path:
        """Resolve the broker jars into the shared cache once and return the lib folder.

        Maven writes into a temporary folder that replaces ``lib`` only on success, and the
        marker is written last, so an interrupted fetch is simply redone. Editing pom.xml
        changes its hash in the marker and triggers a new fetch.
        """
        if self.is_fetched():
            return self.paths.lib
        mvn = _find_mvn()
        with file_lock(self.paths.fetch_lock):
            if self.is_fetched():  # another process fetched while we waited for the lock
                return self.paths.lib
            staging = self.paths.lib.with_name(f"lib.tmp-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            cmd = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM_PATH),
                "dependency:copy-dependencies",
                f"-Dkafka.version={self.kafka_version}",
                f"-DoutputDirectory={staging}",
            ]
            log.info("fetching Kafka %s jars into %s", self.kafka_version, self.paths.lib)
            started = time.monotonic()
            try:
                result = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise BrokerError(f"mvn did not finish within {exc.timeout}s") from exc
            jars = sorted(p.name for p in staging.glob("*.jar")) if staging.is_dir() else []
            if result.returncode != 0 or not jars:
                shutil.rmtree(staging, ignore_errors=True)
                output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise BrokerError(
                    f"mvn failed to fetch Kafka {self.kafka_version} "
                    f"(exit {result.returncode}):\n{output}"
                )
            self.paths.fetch_marker.unlink(missing_ok=True)
            shutil.rmtree(self.paths.lib, ignore_errors=True)
            staging.rename(self.paths.lib)
            marker = {
                "kafka_version": self.kafka_version,
                "pom_sha256": self._pom_digest(),
                "jars": jars,
            }
            self.paths.fetch_marker.write_text(json.dumps(marker, indent=2) + "\n")
            log.info("fetched %d jars in %.1fs", len(jars), time.monotonic() - started)
        return self.paths.lib

    # ------------------------------------------------------------------ config + storage

    def render_config(self) -> str:
        """This broker's ``server.properties``."""
        return render_config(
            data_dir=self.paths.data,
            port=self.port,
            controller_port=self.controller_port,
            host=self.host,
            extra=self.config,
            listeners=self.listeners,
        )

    def write_config(self) -> Path:
        """Write ``server.properties``, regenerated each start so ports follow the caller."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.config.write_text(self.render_config())
        return self.paths.config

    def cluster_id(self) -> str:
        """The persisted cluster id, created on first use.

        Kept beside the data so a re-format after wiping ``data/`` keeps the same identity,
        and read back from ``meta.properties`` if only the data survived.
        """
        try:
            existing = self.paths.cluster_id.read_text().strip()
        except FileNotFoundError:
            existing = ""
        if not existing:
            meta = self.paths.data / "meta.properties"
            if meta.is_file():
                existing = parse_properties(meta.read_text()).get("cluster.id", "")
        cid = existing or new_cluster_id()
        if not existing or not self.paths.cluster_id.is_file():
            self.paths.root.mkdir(parents=True, exist_ok=True)
            self.paths.cluster_id.write_text(cid + "\n")
        return cid

    def is_formatted(self) -> bool:
        """True once the storage tool wrote ``meta.properties`` into the data folder."""
        return (self.paths.data / "meta.properties").is_file()

    def _java_cmd(self, java: str, main_class: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-XX:ErrorFile={self.paths.root / 'hs_err_pid%p.log'}",
            # slf4j-simple (see pom.xml): timestamps, thread names off, quieter chatty loggers.
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            "-Dorg.slf4j.simpleLogger.showThreadName=false",
            "-Dorg.slf4j.simpleLogger.log.state.change.logger=warn",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.utils.AppInfoParser=warn",
            "-cp",
            str(self.paths.lib / "*"),
            main_class,
            *args,
        ]

    def format_storage(self) -> bool:
        """Format the KRaft storage once; True if it formatted now.

        A KRaft node refuses to start on unformatted storage, and formatting again would
        need the same cluster id - hence the id file.
        """
        if self.is_formatted():
            return False
        java = _find_java()
        self.write_config()
        cid = self.cluster_id()
        scram = [arg for user in self.scram_users for arg in ("--add-scram", user)]
        cmd = self._java_cmd(
            java,
            _STORAGE_TOOL,
            "format",
            f"--cluster-id={cid}",
            "-c",
            str(self.paths.config),
            *scram,
        )
        started = time.monotonic()
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            cwd=self.paths.root,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise BrokerError(f"kafka storage format failed (exit {result.returncode}):\n{output}")
        log.info(
            "formatted %s (cluster %s) in %.1fs", self.paths.data, cid, time.monotonic() - started
        )
        return True

    # ------------------------------------------------------------------ process

    def read_pid(self) -> int | None:
        """The pid recorded in the pid file, if any and well-formed."""
        try:
            return int(self.paths.pid.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        """Alive and, where /proc tells, really a Kafka started with our config.

        Guards against a stale pid file whose number now belongs to another process.
        """
        if not _pid_alive(pid):
            return False
        argv = _cmdline(pid)
        if argv is None:
            return True
        return _MAIN_CLASS in argv and str(self.paths.config) in argv

    def _running_pid(self) -> int | None:
        pid = self.read_pid()
        if pid is not None and self._is_our_broker(pid):
            return pid
        return None

    def status(self) -> BrokerStatus:
        """Process state from the pid file plus a short metadata probe."""
        pid = self._running_pid()
        answering = pid is not None and probe_metadata(self.bootstrap, timeout=3.0)
        return BrokerStatus(
            running=pid is not None, pid=pid, bootstrap=self.bootstrap, answering=answering
        )

    def _configured_port(self) -> int | None:
        try:
            listeners = parse_properties(self.paths.config.read_text()).get("listeners", "")
        except FileNotFoundError:
            return None
        for listener in listeners.split(","):
            if listener.startswith("PLAINTEXT://"):
                return int(listener.rpartition(":")[2])
        return None

    def up(self, timeout: float = 60.0) -> str:
        """Start the broker (fetching and formatting first if needed); return its bootstrap.

        Idempotent: a broker already running from this root is waited for, not restarted.
        The JVM is detached in its own session so it outlives the calling process; its
        output goes to ``broker.log`` (the previous run's is kept as ``broker.log.1``).
        If it dies or does not answer within ``timeout`` it is stopped and BrokerError
        carries the log tail.
        """
        running = self._running_pid()
        if running is not None:
            configured = self._configured_port()
            if configured is not None and configured != self.port:
                raise BrokerError(
                    f"a broker from {self.paths.root} already runs on port {configured} "
                    f"(pid {running}); stop it before starting on {self.port}"
                )
            wait_for_metadata(self.bootstrap, timeout, alive=lambda: _pid_alive(running))
            return self.bootstrap
        self.paths.pid.unlink(missing_ok=True)  # stale

        for p in self._ports:
            if port_in_use(p, self.host):
                raise BrokerError(f"port {self.host}:{p} is already in use")
        java = _find_java()
        self.fetch()
        self.write_config()
        self.format_storage()

        if self.paths.log.exists():
            self.paths.log.replace(self.paths.log.with_name(self.paths.log.name + ".1"))
        cmd = self._java_cmd(java, _MAIN_CLASS, str(self.paths.config))
        started = time.monotonic()
        pid = _spawn_detached(cmd, self.paths.log)
        self.paths.pid.write_text(f"{pid}\n")
        log.info("started Kafka %s pid %d on %s", self.kafka_version, pid, self.bootstrap)

        def alive() -> bool:
            return _pid_alive(pid)

        try:
            wait_for_metadata(self.bootstrap, timeout, alive=alive)
        except BrokerError as exc:
            died = not alive()
            self.down(timeout=10.0)
            what = "exited during start" if died else f"did not answer within {timeout}s"
            raise BrokerError(
                f"Kafka broker (pid {pid}) {what}; last lines of {self.paths.log}:\n"
                f"{tail(self.paths.log)}"
            ) from exc
        log.info("Kafka on %s answered after %.1fs", self.bootstrap, time.monotonic() - started)
        return self.bootstrap

    def down(self, timeout: float = 20.0) -> bool:
        """Stop the broker: SIGTERM its process group, SIGKILL after ``timeout``.

        SIGTERM first lets Kafka close its logs cleanly so the next start skips recovery.
        Returns True if a running broker was stopped.
        """
        return self._stop(signal.SIGTERM, timeout)

    def kill(self, timeout: float = 10.0) -> bool:
        """Stop the broker as a crash would: SIGKILL its process group, no clean shutdown.

        The next start recovers its logs (unflushed segments, no clean-shutdown marker).
        Returns True if a running broker was killed.
        """
        return self._stop(signal.SIGKILL, timeout)

    def _stop(self, sig: signal.Signals, timeout: float) -> bool:
        """Send ``sig``; a SIGTERM ignored for ``timeout`` becomes a SIGKILL. Then wait for the
        ports to free. False when no broker was running."""
        pid = self._running_pid()
        if pid is None:
            self.paths.pid.unlink(missing_ok=True)
            return False
        self._signal(pid, sig)
        if not self._wait_gone(pid, timeout):
            if sig is signal.SIGKILL:
                raise BrokerError(f"Kafka pid {pid} survived SIGKILL")
            log.warning("Kafka pid %d ignored SIGTERM for %gs; killing it", pid, timeout)
            self._signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10.0):
                raise BrokerError(f"Kafka pid {pid} survived SIGKILL")
        self.paths.pid.unlink(missing_ok=True)
        self._wait_ports_free(timeout)
        log.info("%s Kafka pid %d", "killed" if sig is signal.SIGKILL else "stopped", pid)
        return True

    def _wait_ports_free(self, timeout: float) -> None:
        """Return once both listeners are closed, so an ``up`` right after cannot clash.

        The process is gone by now, but a child it forked may still hold the sockets briefly.
        """
        deadline = time.monotonic() + timeout
        while any(port_in_use(p, self.host) for p in self._ports):
            if time.monotonic() >= deadline:
                log.warning(
                    "ports %d/%d still taken after stopping Kafka", self.port, self.controller_port
                )
                return
            time.sleep(0.1)

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        """Signal the broker's process group when it leads one (it does when we started it)."""
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True
