"""docker-compose.yml, deploy/ and the Kubernetes example, checked against the code.

Nothing here starts a container (there is no Docker engine on the build machine): the compose
file goes through ``docker-compose config`` when a Compose CLI is installed, and is validated
against the Compose Specification's JSON schema (what that command checks;
tests/support/compose-spec.json is schema/compose-spec.json of compose-spec/compose-spec at
commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0), then every cross-reference a
typo would break at run time is checked: settings names and values, listeners and published
ports, health checks, Prometheus targets, Grafana provisioning and every metric name the
dashboard queries.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from pydantic import AliasChoices

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SOURCES = ("schemas", "streams", "agents", "assetline")

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
WORKERS = ("worker-1", "worker-2")


# --- loading -------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, Any]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def _settings_env_names() -> set[str]:
    """Every environment name pydantic-settings reads into Settings (prefix + field, aliases)."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(a for a in alias.choices if isinstance(a, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"ASSETLINE_{name.upper()}")
    return names


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process with exactly this ``ASSETLINE_*`` environment would build."""
    import os

    for name in list(os.environ):
        if name.startswith("ASSETLINE_") or name == "KAFKA_BOOTSTRAP":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """Published ports as (host, container)."""
    published = []
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")
        published.append((int(host), int(container)))
    return published


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    parsed = {}
    for item in value.split(","):
        name, address = item.split("://")
        host, port = address.rsplit(":", 1)
        parsed[name] = (host, int(port))
    return parsed


def _volume_for(service: dict[str, Any], path: str) -> tuple[str, str]:
    """(volume source, mount point) of the mount holding ``path`` in a service."""
    best = ("", "")
    for entry in service.get("volumes", []):
        source, target = str(entry).split(":")[:2]
        if (path == target or path.startswith(target.rstrip("/") + "/")) and len(target) > len(
            best[1]
        ):
            best = (source, target)
    assert best[1], f"{path} is on no volume of the service"
    return best


# --- the compose file as a whole -----------------------------------------------------------


def test_compose_file_is_valid_for_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "support" / "compose-spec.json").read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(_compose())
    ]
    assert not errors


def test_docker_compose_config_accepts_the_file() -> None:
    """Compose's own check (no engine needed) where a Compose CLI is installed."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif (
        shutil.which("docker")
        and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        command = ["docker", "compose"]
    else:
        pytest.skip("no Compose CLI here; the schema test above covers the same ground")
    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_services_of_the_deployment() -> None:
    assert set(_services()) == {
        *BROKERS,
        "schema-registry",
        "minio",
        "minio-init",
        *WORKERS,
        "prometheus",
        "grafana",
    }


def test_depends_on_names_services_and_volumes_are_declared() -> None:
    compose = _compose()
    services = _services()
    declared = set(compose.get("volumes", {}))
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for entry in service.get("volumes", []):
            source = str(entry).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_host_ports_are_published_once() -> None:
    hosts = [host for service in _services().values() for host, _ in _ports(service)]
    assert len(hosts) == len(set(hosts)), hosts


# --- Kafka ---------------------------------------------------------------------------------


@dataclass
class Broker:
    service: str
    env: dict[str, str]
    listeners: dict[str, tuple[str, int]] = field(init=False)
    advertised: dict[str, tuple[str, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.listeners = _listeners(self.env["KAFKA_LISTENERS"])
        self.advertised = _listeners(self.env["KAFKA_ADVERTISED_LISTENERS"])

    def internal(self) -> str:
        host, port = self.advertised[self.env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        return f"{host}:{port}"


def _brokers() -> list[Broker]:
    services = _services()
    return [Broker(name, _env(services[name])) for name in BROKERS]


def test_three_kraft_nodes_form_one_cluster() -> None:
    brokers = _brokers()
    assert {b.env["CLUSTER_ID"] for b in brokers} == {brokers[0].env["CLUSTER_ID"]}
    assert sorted(int(b.env["KAFKA_NODE_ID"]) for b in brokers) == [1, 2, 3]
    for broker in brokers:
        assert _services()[broker.service]["image"].startswith("apache/kafka:4.")
        assert set(broker.env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        voters = {}
        for voter in broker.env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","):
            node, address = voter.split("@")
            voters[int(node)] = address
        controller = broker.env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        # every node lists every node, at that node's own controller listener
        assert voters == {
            int(b.env["KAFKA_NODE_ID"]): f"{b.service}:{b.listeners[controller][1]}"
            for b in brokers
        }


def test_listeners_reach_brokers_from_containers_and_from_the_host() -> None:
    brokers = _brokers()
    for broker in brokers:
        service = _services()[broker.service]
        protocols = dict(
            p.split(":") for p in broker.env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert set(broker.listeners) <= set(protocols)
        controller = broker.env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        internal = broker.env["KAFKA_INTER_BROKER_LISTENER_NAME"]
        # advertised = every listener but the controller's
        assert set(broker.advertised) == set(broker.listeners) - {controller}
        # INTERNAL: the service name (resolvable on the compose network), the listener's port
        host, port = broker.advertised[internal]
        assert host == broker.service == service["hostname"]
        assert port == broker.listeners[internal][1]
        # EXTERNAL: localhost:P, P published to the container's EXTERNAL listener
        (external,) = set(broker.advertised) - {internal}
        host, port = broker.advertised[external]
        assert host == "localhost"
        assert (port, broker.listeners[external][1]) in _ports(service)
        published_containers = {container for _, container in _ports(service)}
        assert broker.listeners[controller][1] not in published_containers
        assert broker.listeners[internal][1] not in published_containers
        # the health check asks the broker on a listener it has
        check = " ".join(service["healthcheck"]["test"])
        match = re.search(r"--bootstrap-server localhost:(\d+)", check)
        assert match
        assert int(match.group(1)) in {p for _, p in broker.listeners.values()}


def test_host_bootstrap_in_the_header_is_the_external_listeners() -> None:
    brokers = _brokers()
    external = ",".join(
        f"{h}:{p}"
        for b in brokers
        for name, (h, p) in b.advertised.items()
        if name != b.env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    )
    assert f"ASSETLINE_KAFKA_BOOTSTRAP={external}" in (ROOT / "docker-compose.yml").read_text()


def test_internal_topics_replicated_three_times_two_in_sync() -> None:
    for broker in _brokers():
        env = broker.env
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == len(BROKERS)
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == len(BROKERS)
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == len(BROKERS)
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2
        assert int(env["KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"]) == len(BROKERS)
        assert int(env["KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"]) == 2
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    registry = _env(_services()["schema-registry"])
    assert int(registry["SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR"]) == len(BROKERS)


def test_containers_bootstrap_from_every_broker_internal_listener() -> None:
    internal = [b.internal() for b in _brokers()]
    for name in WORKERS:
        bootstrap = _env(_services()[name])["ASSETLINE_KAFKA_BOOTSTRAP"]
        assert bootstrap.split(",") == internal
    registry = _env(_services()["schema-registry"])["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"]
    assert [a.split("://")[1] for a in registry.split(",")] == internal


# --- workers -------------------------------------------------------------------------------


def test_worker_environment_names_are_settings() -> None:
    known = _settings_env_names()
    for name in WORKERS:
        unknown = set(_env(_services()[name])) - known
        assert not unknown, f"{name} sets settings that do not exist: {sorted(unknown)}"


def test_worker_environment_is_accepted_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    brokers = len(BROKERS)
    groups = set()
    for name in WORKERS:
        settings = _settings_from(_env(_services()[name]), monkeypatch)
        assert settings.web_host == "0.0.0.0"  # reachable by the health check and Prometheus
        assert settings.topic_replication == brokers
        groups.add((settings.app_id, settings.topic_prefix))
    assert len(groups) == 1, "all workers belong to one consumer group on the same topics"


def test_workers_keep_their_own_state_and_share_the_blobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _services()
    minio = services["minio"]
    minio_env = _env(minio)
    init = " ".join(services["minio-init"]["command"])
    address = minio["command"][minio["command"].index("--address") + 1]
    # minio-init logs in with MinIO's own credentials, on MinIO's address
    assert f"http://minio{address} {minio_env['MINIO_ROOT_USER']} " in init
    assert f" {minio_env['MINIO_ROOT_PASSWORD']} " in init
    data_volumes = set()
    for name in WORKERS:
        service = services[name]
        settings = _settings_from(_env(service), monkeypatch)
        data_volumes.add(_volume_for(service, str(settings.data_dir))[0])
        # the shared S3 store: the bucket minio-init creates, on the minio service
        assert settings.blob_store == "s3"
        bucket = re.escape(settings.blob_s3_bucket)
        assert re.search(rf"mc mb --ignore-existing \S+/{bucket}(\s|$)", init)
        endpoint = urlsplit(settings.blob_s3_endpoint_url)
        assert endpoint.hostname == "minio"
        assert f":{endpoint.port}" == address
        assert settings.blob_s3_access_key_id == minio_env["MINIO_ROOT_USER"]
        secret = settings.blob_s3_secret_access_key.get_secret_value()
        assert secret == minio_env["MINIO_ROOT_PASSWORD"]
    assert len(data_volumes) == len(WORKERS), "each worker needs its own data volume"


def test_worker_health_check_asks_readyz_on_the_web_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in WORKERS:
        service = _services()[name]
        settings = _settings_from(_env(service), monkeypatch)
        check = " ".join(service["healthcheck"]["test"])
        (url,) = re.findall(r"http://[^'\" ]+", check)
        parts = urlsplit(url)
        assert parts.path == "/readyz"
        assert parts.port == settings.web_port
        assert [c for _, c in _ports(service)] == [settings.web_port]
    # the worker serves that page
    assert _code_has_page("/readyz")
    assert _code_has_page("/metrics")


def test_workers_wait_for_kafka_registry_and_bucket() -> None:
    for name in WORKERS:
        depends = _services()[name]["depends_on"]
        for broker in BROKERS:
            assert depends[broker]["condition"] == "service_healthy"
        assert depends["schema-registry"]["condition"] == "service_healthy"
        assert depends["minio-init"]["condition"] == "service_completed_successfully"


def test_workers_use_the_schema_registry_service(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _services()["schema-registry"]
    (listener,) = _env(registry)["SCHEMA_REGISTRY_LISTENERS"].split(",")
    port = urlsplit(listener).port
    for name in WORKERS:
        settings = _settings_from(_env(_services()[name]), monkeypatch)
        assert settings.schema_registry_url
        url = urlsplit(settings.schema_registry_url)
        assert (url.hostname, url.port) == ("schema-registry", port)
    check = " ".join(registry["healthcheck"]["test"])
    assert f"localhost:{port}/" in check


def test_worker_image_has_the_mount_points() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for name in WORKERS:
        service = _services()[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        for entry in service["volumes"]:
            target = str(entry).split(":")[1]
            # a named volume takes the owner of the image's folder: the worker's user
            assert re.search(rf"chown assetline [^\n]*{re.escape(target)}\b", dockerfile), target


# --- Prometheus and Grafana ----------------------------------------------------------------


def test_prometheus_scrapes_every_worker_on_its_web_port(monkeypatch: pytest.MonkeyPatch) -> None:
    prometheus = _services()["prometheus"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = [t for config in job["static_configs"] for t in config["targets"]]
    expected = []
    for name in WORKERS:
        settings = _settings_from(_env(_services()[name]), monkeypatch)
        expected.append(f"{name}:{settings.web_port}")
    assert targets == expected


def _grafana_mounts() -> dict[str, Path]:
    """Grafana's container path -> the repository folder mounted there."""
    mounts = {}
    for entry in _services()["grafana"]["volumes"]:
        source, target = str(entry).split(":")[:2]
        mounts[target] = ROOT / source
    return mounts


def _datasources() -> list[dict[str, Any]]:
    mounts = _grafana_mounts()
    folder = mounts["/etc/grafana/provisioning"] / "datasources"
    found = []
    for path in sorted(folder.glob("*.yml")):
        found.extend(yaml.safe_load(path.read_text())["datasources"])
    return found


def test_grafana_datasource_is_the_prometheus_service() -> None:
    (source,) = _datasources()
    url = urlsplit(source["url"])
    assert source["type"] == "prometheus"
    assert url.hostname == "prometheus"
    assert any(c == url.port for _, c in _ports(_services()["prometheus"]))
    assert not any("web.listen-address" in c for c in _services()["prometheus"]["command"])


def _dashboards() -> list[dict[str, Any]]:
    mounts = _grafana_mounts()
    folder = mounts["/etc/grafana/provisioning"] / "dashboards"
    (provider_file,) = folder.glob("*.yml")
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    dashboards_dir = mounts[provider["options"]["path"]]
    return [json.loads(p.read_text()) for p in sorted(dashboards_dir.glob("*.json"))]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    (source,) = _datasources()
    (dashboard,) = _dashboards()
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]


def test_dashboard_has_every_section() -> None:
    (dashboard,) = _dashboards()
    rows = [p["title"] for p in _panels(dashboard) if p["type"] == "row"]
    for topic in ("Throughput", "Latency", "Lag", "Errors", "Cost", "Review"):
        assert any(topic.lower() in row.lower() for row in rows), topic


# --- metric names ----------------------------------------------------------------------------

#: Exposed sample names per metric type (prometheus_client adds these suffixes).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "enum": ("",),
}
CONSTRUCTORS = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "enum",
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
    "SummaryMetricFamily": "summary",
    "InfoMetricFamily": "info",
}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    labels: frozenset[str]
    where: str


def _constant_strings(node: ast.AST | None) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if all(isinstance(v, str) for v in values) and len(values) == len(node.elts):
            return [str(v) for v in values]
    return None


def _metrics_in_code() -> dict[str, Metric]:
    """Every ``assetline_*`` metric built with prometheus_client in the project's sources."""
    found: dict[str, Metric] = {}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                kind = CONSTRUCTORS.get(called)
                if kind is None or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                if not first.value.startswith("assetline_"):
                    continue
                labels = _constant_strings(node.args[2]) if len(node.args) > 2 else None
                for keyword in node.keywords:
                    if keyword.arg in ("labelnames", "labels"):
                        labels = _constant_strings(keyword.value)
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                name = first.value.removesuffix("_total") if kind == "counter" else first.value
                found[name] = Metric(name, kind, frozenset(labels or ()), where)
    return found


def _exposed(metrics: dict[str, Metric]) -> dict[str, Metric]:
    """Sample name as Prometheus stores it -> the metric."""
    exposed = {}
    for metric in metrics.values():
        for suffix in SUFFIXES[metric.kind]:
            exposed[metric.name + suffix] = metric
    return exposed


def test_metric_scan_finds_the_line_metrics() -> None:
    """The scan itself: it must see metrics of each kind, with their labels."""
    metrics = _metrics_in_code()
    assert metrics["assetline_completions"].kind == "counter"
    assert metrics["assetline_completions"].labels == {"status"}
    assert metrics["assetline_stage_seconds"].kind == "histogram"
    assert metrics["assetline_review_pending"].kind == "gauge"
    exposed = _exposed(metrics)
    assert "assetline_stage_seconds_bucket" in exposed
    assert "assetline_completions_total" in exposed
    assert "assetline_completions" not in exposed  # a counter has no bare sample


_METRIC = re.compile(r"\b(assetline_[a-zA-Z0-9_]+)\b")
_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"\b(assetline_[a-zA-Z0-9_]+)\{([^}]*)\}")
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def test_dashboard_queries_only_metrics_and_labels_the_code_exposes() -> None:
    exposed = _exposed(_metrics_in_code())
    (dashboard,) = _dashboards()
    problems = []
    seen = set()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            names = set(_METRIC.findall(expr))
            assert names, f"{panel['title']}: no assetline metric in {expr!r}"
            unknown = names - set(exposed)
            if unknown:
                problems.append(f"{panel['title']}: {sorted(unknown)} not in the code")
                continue
            seen |= names
            labels = set().union(*(exposed[n].labels for n in names))
            if any(n.endswith("_bucket") for n in names):
                labels.add("le")
            labels |= {"instance", "job"}  # Prometheus adds these to every scraped sample
            for group in _BY.findall(expr):
                for label in filter(None, (s.strip() for s in group.split(","))):
                    if label not in labels:
                        problems.append(f"{panel['title']}: no label {label!r} in {expr!r}")
            for name, matchers in _SELECTOR.findall(expr):
                for matcher in filter(None, (s.strip() for s in matchers.split(","))):
                    label = re.split(r"[=!~]", matcher, maxsplit=1)[0].strip()
                    if label not in exposed[name].labels:
                        problems.append(f"{panel['title']}: {name} has no label {label!r}")
            for label in _LEGEND.findall(target.get("legendFormat", "")):
                if label not in labels:
                    problems.append(f"{panel['title']}: legend uses unknown label {label!r}")
    assert not problems, "\n".join(problems)
    assert len(seen) >= 20


def _code_has_page(path: str) -> bool:
    pattern = re.compile(rf"\.page\(\s*[\"']{re.escape(path)}[\"']")
    return any(
        pattern.search(p.read_text()) for package in SOURCES for p in (ROOT / package).rglob("*.py")
    )


# --- Kubernetes example --------------------------------------------------------------------


def _k8s() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "worker.yaml").read_text()) if d]


def test_kubernetes_worker_settings_probes_and_state(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = {d["kind"]: d for d in _k8s()}
    assert set(docs) == {"Service", "StatefulSet"}
    statefulset = docs["StatefulSet"]
    pod = statefulset["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    unknown = set(env) - _settings_env_names()
    assert not unknown, f"worker.yaml sets settings that do not exist: {sorted(unknown)}"
    # secrets come from a Secret, not the manifest
    for name in env:
        if name.endswith(("PASSWORD", "SECRET_ACCESS_KEY")):
            assert "secretKeyRef" in env[name]["valueFrom"], name
    # the settings fit together (SASL complete, the S3 store has bucket and keys) once the
    # Secrets fill in their values
    values = {n: e.get("value", "from-a-secret") for n, e in env.items()}
    settings = _settings_from(values, monkeypatch)
    assert settings.blob_store == "s3", "pods on several nodes need the shared blob store"
    assert env["ASSETLINE_WEB_HOST"]["value"] == "0.0.0.0"
    web_port = int(env["ASSETLINE_WEB_PORT"]["value"])
    (port,) = container["ports"]
    assert port["containerPort"] == web_port
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in (*probes.values(), container["startupProbe"]["httpGet"]):
        assert probe["port"] in (port["name"], web_port)
    assert _code_has_page("/healthz")
    assert _code_has_page("/readyz")
    annotations = pod["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == web_port
    assert annotations["prometheus.io/path"] == "/metrics"
    # the data dir is on the pod's own persistent volume
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    data_dir = env["ASSETLINE_DATA_DIR"]["value"]
    assert data_dir.startswith(mounts[claim["metadata"]["name"]].rstrip("/") + "/")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # the headless service selects these pods on the web port
    service = docs["Service"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == web_port
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]


# --- README ----------------------------------------------------------------------------------


def test_readme_deploying_names_only_real_settings() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Deploying\n")
    following = text.find("\n## ", start + 1)
    section = text[start : following if following > 0 else None]
    named = set(re.findall(r"\bASSETLINE_[A-Z0-9_]*[A-Z0-9]\b", section))
    assert named
    unknown = named - _settings_env_names()
    assert not unknown, f"README 'Deploying' names settings that do not exist: {sorted(unknown)}"
    # the host bootstrap it shows is docker-compose's EXTERNAL listeners
    export = "export ASSETLINE_KAFKA_BOOTSTRAP="
    (line,) = (ln for ln in section.splitlines() if ln.startswith(export))
    assert line.removeprefix("export ") in (ROOT / "docker-compose.yml").read_text()
