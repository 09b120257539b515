"""Destinations: named sinks, routes per tenant/campaign, secrets by name, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.deliver.destinations import DestinationsFileError, load_destinations
from agents.deliver.sinks import FilesystemSink
from agents.deliver.sinks.http import HttpSink
from agents.deliver.sinks.s3 import S3Sink

ROOT = Path(__file__).parents[3]
SECRETS = {"s3-acme": SecretStr("s3-secret-value"), "dam-token": SecretStr("Bearer t0k")}


def test_without_a_file_everything_goes_to_the_delivery_dir(tmp_path: Path) -> None:
    destinations = load_destinations(None, {}, tmp_path / "delivery")
    sink = destinations.sinks[destinations.name_for("any", "thing")]
    assert isinstance(sink, FilesystemSink)
    assert destinations.name_for("acme", "spring") == "filesystem"


def test_the_example_file_builds_every_kind_of_sink() -> None:
    destinations = load_destinations(
        ROOT / "examples" / "destinations" / "destinations.yaml", SECRETS, Path("unused")
    )
    assert isinstance(destinations.sinks["local"], FilesystemSink)
    assert isinstance(destinations.sinks["acme-bucket"], S3Sink)
    assert isinstance(destinations.sinks["dam"], HttpSink)
    assert destinations.retry.attempts == 5


@pytest.mark.parametrize(
    ("tenant", "campaign", "expected"),
    [
        ("acme", "spring-sale", "dam"),  # tenant + campaign beats tenant alone
        ("acme", "autumn", "acme-bucket"),
        ("globex", "spring-sale", "local"),  # the campaign route is acme's only
        ("globex", "x", "local"),
    ],
)
def test_the_most_specific_route_wins(tenant: str, campaign: str, expected: str) -> None:
    destinations = load_destinations(
        ROOT / "examples" / "destinations" / "destinations.yaml", SECRETS, Path("unused")
    )
    assert destinations.name_for(tenant, campaign) == expected


def test_a_campaign_only_route_applies_to_every_tenant(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(
        'default = "a"\n[destinations.a]\ntype = "filesystem"\nroot = "x"\n'
        '[destinations.b]\ntype = "filesystem"\nroot = "y"\n'
        '[[routes]]\ncampaign_id = "launch"\ndestination = "b"\n'
    )
    destinations = load_destinations(path, {}, tmp_path)
    assert destinations.name_for("anyone", "launch") == "b"
    assert destinations.name_for("anyone", "other") == "a"


def test_a_missing_secret_fails_the_start_by_name_without_values(tmp_path: Path) -> None:
    with pytest.raises(DestinationsFileError) as caught:
        load_destinations(
            ROOT / "examples" / "destinations" / "destinations.yaml",
            {"s3-acme": SecretStr("s3-secret-value")},
            tmp_path,
        )
    assert "'dam-token'" in str(caught.value)
    assert "s3-secret-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("destinations: {a: {type: filesystem, root: x}}\ndefault: b\n", "unknown destination"),
        (
            "destinations: {a: {type: filesystem, root: x}}\ndefault: a\n"
            "routes: [{destination: a}]\n",
            "needs a tenant",
        ),
        ("destinations: {a: {type: ftp, root: x}}\ndefault: a\n", "type"),
        ("destinations: [unclosed\n", "d.yaml:2: not valid YAML"),
        (  # an api destination's body template may only use the delivery's fields
            "destinations: {a: {type: api, url: 'https://x.test/up', fields: {k: '{password}'}}}"
            "\ndefault: a\n",
            "unknown placeholders ['password']",
        ),
        (
            "destinations: {a: {type: api, url: 'https://x.test/up', body: multipart,"
            " fields: {f: '{file_base64}'}}}\ndefault: a\n",
            "a multipart body sends the file as file_field",
        ),
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(DestinationsFileError) as caught:
        load_destinations(path, {}, tmp_path)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (  # the second definition of "a" silently replaced the first before
            "destinations:\n  a: {type: filesystem, root: x}\n  a: {type: filesystem, root: y}\n"
            "default: a\n",
            "d.yaml:3: not valid YAML: duplicate key 'a' (first at line 2)",
        ),
        (
            "destinations:\n  a: &fs {type: filesystem, root: x}\n  b: *fs\ndefault: a\n",
            "d.yaml:2: not valid YAML: YAML anchor &fs is not allowed here",
        ),
    ],
)
def test_duplicate_keys_and_aliases_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(DestinationsFileError) as caught:
        load_destinations(path, {}, tmp_path)
    assert str(caught.value).startswith(str(tmp_path))
    assert fragment in str(caught.value)
