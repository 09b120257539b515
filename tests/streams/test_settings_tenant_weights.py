"""``tenant_weights``: each tenant's weighted fair share among waiting requests of one priority."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from streams.settings import Settings, settings_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ASSETLINE_") or name.upper() == "KAFKA_BOOTSTRAP":
            monkeypatch.delenv(name)


def test_no_weights_by_default() -> None:
    assert Settings().tenant_weights == {}


def test_weights_are_read_as_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLINE_TENANT_WEIGHTS", '{"acme": 3, "beta": 0.5}')
    assert Settings().tenant_weights == {"acme": 3.0, "beta": 0.5}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"acme": 0}', "greater than 0"),
        ('{"acme": -1}', "greater than 0"),
        ('{"acme": 2, "beta": -0.5}', "greater than 0"),
        ('{"acme": Infinity}', "finite number"),
        ('{"acme": NaN}', "finite number"),
        ('{"acme": "heavy"}', "valid number"),
        ("[1, 2]", "valid dictionary"),
        ("acme=3", "not JSON"),
    ],
)
def test_bad_weights_are_refused(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    monkeypatch.setenv("ASSETLINE_TENANT_WEIGHTS", raw)
    with pytest.raises(ValidationError, match=message) as caught:
        Settings()
    (error,) = caught.value.errors()
    assert error["loc"][0] == "tenant_weights"


def test_a_zero_weight_passed_in_code_is_refused_too() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        Settings(tenant_weights={"acme": 0.0})


def test_weights_survive_the_trip_to_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    env = settings_env(Settings(tenant_weights={"acme": 3.0, "beta": 0.25}))
    monkeypatch.setenv("ASSETLINE_TENANT_WEIGHTS", env["ASSETLINE_TENANT_WEIGHTS"])
    assert Settings().tenant_weights == {"acme": 3.0, "beta": 0.25}
