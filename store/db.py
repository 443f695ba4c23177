"""The store's database connection: one async engine per process (docs/store.md).

``Database`` wraps the SQLAlchemy ``AsyncEngine`` and turns connection failures into
``StoreUnavailable`` (``guard``). SQLite runs in WAL mode with foreign keys on and a busy
timeout, so a worker and a gateway can share the file; PostgreSQL connects through asyncpg with
a pool that pings connections before use.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from store.errors import StoreUnavailable
from store.settings import StoreSettings

SUPPORTED = ("sqlite+aiosqlite", "postgresql+asyncpg")
_UNDEFINED_TABLE = "42P01"
# SQLSTATE classes of a server that is unreachable for now: 08 connection exception (e.g. 08003,
# the connection closed mid-operation), 57P operator intervention (57P01 admin shutdown, 57P02
# crash shutdown, 57P03 starting up / not yet accepting connections). Found by make chaos
# (docs/reliability.md): they reached the gateway as 500 while PostgreSQL restarted.
_UNAVAILABLE_STATES = ("08", "57P")


def normalize_url(url: str | URL) -> URL:
    """The async URL for ``url``: ``sqlite://`` becomes ``sqlite+aiosqlite://`` and
    ``postgres(ql)://`` becomes ``postgresql+asyncpg://``; other drivers are refused."""
    parsed = make_url(url)
    name = parsed.drivername
    if name == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif name in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername not in SUPPORTED:
        raise ValueError(f"unsupported database URL scheme {name!r}: use one of {SUPPORTED}")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL for logs and errors, password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


class Database:
    """The engine and its dialect; ``guard()`` maps connection failures."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def from_url(
        cls,
        url: str | URL,
        *,
        pool_size: int = 5,
        timeout: float = 5.0,
        pooled: bool = True,
    ) -> Database:
        """An engine for ``url``; ``pooled=False`` opens a connection per use (migrations)."""
        parsed = normalize_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.drivername.startswith("sqlite"):
            path = _sqlite_path(parsed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": timeout}
        else:
            kwargs["connect_args"] = {
                "timeout": timeout,
                "server_settings": {"application_name": "cotpay-escrow"},
            }
            if pooled:
                kwargs.update(
                    pool_size=pool_size,
                    max_overflow=pool_size,
                    pool_timeout=timeout,
                    pool_pre_ping=True,
                )
        if not pooled:
            kwargs["poolclass"] = NullPool
        engine = create_async_engine(parsed, **kwargs)
        if parsed.drivername.startswith("sqlite"):
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas(timeout))
        return cls(engine)

    @classmethod
    def from_settings(cls, settings: StoreSettings | None = None) -> Database:
        settings = settings or StoreSettings()
        return cls.from_url(
            settings.database_url,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT for ``table``, which has ``on_conflict_do_*``."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    @property
    def url(self) -> str:
        return safe_url(self.engine.url)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Turn a failure to reach the database into ``StoreUnavailable``."""
        try:
            yield
        except (OperationalError, InterfaceError, DisconnectionError, PoolTimeout) as err:
            raise StoreUnavailable(f"order store unavailable ({self.url}): {_short(err)}") from err
        except DBAPIError as err:
            if err.connection_invalidated or _undefined_table(err) or _server_unavailable(err):
                raise StoreUnavailable(
                    f"order store unavailable ({self.url}): {_short(err)}"
                ) from err
            raise
        except (TimeoutError, OSError) as err:
            raise StoreUnavailable(f"order store unavailable ({self.url}): {err!r}") from err

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success; failures guarded."""
        async with self.guard(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; failures guarded."""
        async with self.guard(), self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers and has the schema."""
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1 FROM orders WHERE 1 = 0"))

    async def close(self) -> None:
        await self.engine.dispose()


def _short(err: DBAPIError | DisconnectionError | PoolTimeout) -> str:
    orig = getattr(err, "orig", None)
    return str(orig if orig is not None else err).splitlines()[0][:300]


def _undefined_table(err: DBAPIError) -> bool:
    orig = err.orig
    return getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE or "no such table" in str(orig)


def _server_unavailable(err: DBAPIError) -> bool:
    state = getattr(err.orig, "sqlstate", None)
    return isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES)


def _sqlite_pragmas(timeout: float) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        _wal(cursor, timeout)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def _wal(cursor: Any, timeout: float) -> None:
    """Put the file in WAL mode (it stays so). Switching needs the file to itself, and SQLite
    answers "database is locked" at once, without its busy timeout, while another connection
    writes: as when a worker and a gateway (or three upgrades) open a new file together. The
    switch is then retried for up to ``timeout``; a file already in WAL mode needs none."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as err:  # the driver's OperationalError, adapted by SQLAlchemy
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # only while a new file is being created by another connection
