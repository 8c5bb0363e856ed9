"""Fixtures of the robustness suite; the loopback servers come from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cases import ENV_VARS, AssetServer


@pytest.fixture(autouse=True)
def no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cases say their backend, key and base URL; the environment must not add any."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def assets() -> Iterator[AssetServer]:
    """The server of the URL sources (an image, an HTML page, a redirect loop...)."""
    with AssetServer() as server:
        yield server
