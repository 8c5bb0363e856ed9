"""Shared pytest fixtures: the loopback OpenAI-images server (see tests/loopback.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback import LoopbackServer

# Fake keys are written as "sk-" + "..." so no key-shaped literal is committed.
FAKE_API_KEY = "sk-" + "test-SENTINEL-4f2a9c7e1b3d5a6f"


def _serve(api_key: str | None) -> Iterator[LoopbackServer]:
    with LoopbackServer(api_key=api_key) as server:
        yield server
    # A bug inside the server must fail the test that met it, not pass unnoticed.
    assert not server.errors, "loopback server raised:\n" + "\n".join(server.errors)


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    """A fresh loopback server without authentication, closed after the test."""
    yield from _serve(None)


@pytest.fixture
def loopback_with_key() -> Iterator[LoopbackServer]:
    """A fresh loopback server that demands ``Authorization: Bearer <server.api_key>``."""
    yield from _serve(FAKE_API_KEY)
