"""The order store: the record of every order that outlives Temporal (docs/store.md).

SQLAlchemy 2 (async) over SQLite (``aiosqlite``, the embedded default) or PostgreSQL
(``asyncpg``), with Alembic migrations in ``store/migrations``. Modules:

- ``store.models``: the pydantic models of the API (pure: no I/O, importable by workflow code);
- ``store.settings``: ``ESCROW_DATABASE_URL``;
- ``store.db``: ``Store``, the engine and the one object callers hold;
- ``store.migrate``: ``upgrade(url)`` (also ``python -m store upgrade``);
- ``store.orders``, ``store.export``, ``store.reports``, ``store.findings``: the operations;
- ``store.errors``: the typed errors callers map to HTTP answers.

This module imports nothing, so ``store.models`` stays light.
"""
