"""Alembic environment of the order store (docs/store.md).

Alembic runs only through ``store.migrate`` (``python -m store upgrade|current|revision``), which
opens the connection, takes the migration lock and passes it in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise SystemExit("run the store's migrations with: python -m store upgrade (docs/store.md)")
_run(connection)
