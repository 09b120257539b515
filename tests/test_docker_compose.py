"""docker-compose.yml cannot run here (no Docker engine); keep it consistent with the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, object]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_are_kafka_worker_and_prometheus() -> None:
    services = _compose()["services"]
    assert isinstance(services, dict)
    assert set(services) == {"kafka", "worker", "prometheus"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["worker"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_worker_environment_names_real_settings() -> None:
    worker = _compose()["services"]["worker"]  # type: ignore[index]
    fields = {f"ASSETLINE_{name.upper()}" for name in Settings.model_fields}
    unknown = set(worker["environment"]) - fields
    assert not unknown, f"docker-compose sets settings that do not exist: {unknown}"


def test_prometheus_scrapes_the_worker_metrics_port() -> None:
    worker = _compose()["services"]["worker"]  # type: ignore[index]
    port = worker["environment"]["ASSETLINE_WEB_PORT"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{port}"]
