"""A PostgreSQL server that is shutting down, starting up or dropped the connection mid-query is
unavailable (503 ``store_unavailable``), not an internal error (500).

Found by ``make chaos`` with store outages (docs/reliability.md): while PostgreSQL restarted, the
gateway's reads met asyncpg errors with SQLSTATE 57P03 ("the database system is starting up") and
08003 ("connection was closed in the middle of operation"), which SQLAlchemy raises as a plain
``DBAPIError``. A real server: stopped at once and started again while reads run.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from bench.chaos_store import PostgresStore
from store.api import OrderStore
from store.db import Database
from store.errors import StoreUnavailable


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", ["57P01", "57P02", "57P03", "08003", "08006"])
async def test_server_states_of_an_outage_are_unavailable(tmp_path: Path, sqlstate: str) -> None:
    async with OrderStore.open(f"sqlite+aiosqlite:///{tmp_path}/s.db") as store:
        db: Database = store.db
        with pytest.raises(StoreUnavailable):
            async with db.guard():
                raise DBAPIError("SELECT 1", None, _PgError(sqlstate))


async def test_other_database_errors_are_not_hidden(tmp_path: Path) -> None:
    async with OrderStore.open(f"sqlite+aiosqlite:///{tmp_path}/s.db") as store:
        with pytest.raises(DBAPIError):
            async with store.db.guard():
                raise DBAPIError("SELECT 1", None, _PgError("22P02"))


async def test_reads_during_a_postgresql_restart_are_served_or_unavailable() -> None:
    root = Path(tempfile.mkdtemp(prefix="escrow-pg-restart-"))  # outside pytest's private dir
    server = PostgresStore(root / "pg")
    await server.start()
    outcomes: Counter[str] = Counter()
    try:
        async with OrderStore.open(server.database_url) as store:
            stop = asyncio.Event()

            async def read() -> None:
                while not stop.is_set():
                    try:
                        await store.get_order("x")
                        outcomes["served"] += 1
                    except StoreUnavailable:
                        outcomes["unavailable"] += 1
                    await asyncio.sleep(0.01)

            readers = [asyncio.create_task(read()) for _ in range(3)]
            try:
                for _ in range(3):
                    await asyncio.sleep(0.3)
                    await server.kill()
                    await asyncio.sleep(0.3)
                    await server.start()
                await asyncio.sleep(0.3)
            finally:
                stop.set()
                await asyncio.gather(*readers)  # raises anything but StoreUnavailable
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert outcomes["served"] > 0 and outcomes["unavailable"] > 0, outcomes
