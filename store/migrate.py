"""Alembic migrations of the order store, run from code (docs/store.md).

``await upgrade(url)`` brings a database to the latest revision (``cotpay-escrow db upgrade`` and
``python -m store upgrade`` call it). Migrations run in one transaction under a lock: a
PostgreSQL advisory lock, or SQLite's write lock taken by ``BEGIN IMMEDIATE``; so a worker and a
gateway upgrading the same database at once apply each revision once, and a failed revision
leaves the previous one in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from store.db import Database, normalize_url, safe_url
from store.settings import StoreSettings

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "head"
# pg_advisory_xact_lock key: the migrations of this service, whatever the database.
_LOCK_KEY = 0x636F7470_6179  # "cotpay"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _url(url: str | URL | None) -> URL:
    return normalize_url(url if url is not None else StoreSettings().database_url)


def _engine(url: URL) -> AsyncEngine:
    """An engine for migrations: no pool; on SQLite, transactions start ``BEGIN IMMEDIATE``
    (SQLite's DDL is transactional, but the driver's own BEGIN comes too late for it)."""
    engine = Database.from_url(url, pooled=False).engine
    if url.drivername.startswith("sqlite"):
        sync = engine.sync_engine

        @event.listens_for(sync, "connect")
        def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(sync, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _alembic(conn: Connection, action: str, revision: str, message: str = "") -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    if action == "upgrade":
        command.upgrade(cfg, revision)
    elif action == "downgrade":
        command.downgrade(cfg, revision)
    elif action == "revision":
        command.revision(cfg, message=message, autogenerate=True)
    else:  # pragma: no cover - callers pass one of the above
        raise ValueError(action)


async def _run(url: str | URL | None, action: str, revision: str, message: str = "") -> str | None:
    engine = _engine(_url(url))
    try:
        async with Database(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            await conn.run_sync(_alembic, action, revision, message)
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def upgrade(url: str | URL | None = None, revision: str = HEAD) -> str | None:
    """Upgrade the database at ``url`` (default: ``ESCROW_DATABASE_URL``) to ``revision``;
    returns the revision it is at. Raises ``StoreUnavailable`` if it cannot be reached."""
    return await _run(url, "upgrade", revision)


async def downgrade(url: str | URL | None, revision: str) -> str | None:
    """Downgrade to ``revision`` (``base``: drop everything). For tests and emergencies."""
    return await _run(url, "downgrade", revision)


async def current(url: str | URL | None = None) -> str | None:
    """The revision the database is at (None: no schema yet)."""
    engine = _engine(_url(url))
    try:
        async with Database(engine).connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def autogenerate_revision(url: str | URL | None, message: str) -> None:
    """Write a new revision file from the difference between ``store.schema`` and a database
    at head (for developers: ``python -m store revision -m "..."``)."""
    await _run(url, "revision", HEAD, message)


def is_behind(revision: str | None) -> bool:
    """True when ``revision`` is older than this code's head (None: no schema). A revision this
    code does not know is newer (a later release migrated first): not behind."""
    if revision is None:
        return True
    script = ScriptDirectory.from_config(alembic_config())
    head = head_revision()
    if revision == head:
        return False
    known = {rev.revision for rev in script.walk_revisions()}
    return revision in known


def describe(url: str | URL | None) -> str:
    return safe_url(_url(url))
