"""Fallback files are read once at start: a bad one fails the start in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.config import (
    Alias,
    ChainEntry,
    Fallback,
    OfflineConfig,
    ProviderSpec,
    RoutingConfig,
)
from agents.inference.routing.fallback import FallbackAssets
from streams.config_files import ConfigError


def with_fallback_file(path: Path) -> RoutingConfig:
    return RoutingConfig(
        providers={"offline": ProviderSpec(adapter=OfflineConfig())},
        aliases={
            "hero": Alias(
                chain=[ChainEntry(provider="offline", model="offline")],
                fallback=Fallback(file=path),
            )
        },
        default_alias="hero",
    )


def test_a_missing_fallback_file_is_a_config_error_not_an_os_error(tmp_path: Path) -> None:
    """Before: FileNotFoundError, which the CLI reported as 'cannot reach Kafka'."""
    path = tmp_path / "absent.png"
    with pytest.raises(ConfigError) as caught:
        FallbackAssets(with_fallback_file(path), OfflineProvider())
    assert str(caught.value) == (
        f"{path}: fallback file of alias 'hero' cannot be read: No such file or directory"
    )


def test_an_endless_fallback_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    endless = tmp_path / "zero.png"
    endless.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="fallback file of alias 'hero' is larger than"):
        FallbackAssets(with_fallback_file(endless), OfflineProvider())


def test_a_fallback_file_is_cached_with_its_sniffed_type(tmp_path: Path) -> None:
    path = tmp_path / "hero.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    assets = FallbackAssets(with_fallback_file(path), OfflineProvider())
    assert assets._files["hero"].media_type == "image/png"
