"""``cotpay-escrow db upgrade|current``: the order store's schema (docs/store.md, docs/cli.md).

``upgrade`` runs the Alembic migrations of ``store/migrations`` (``store.migrate``) in one
transaction under a lock, so several processes may run it at once; the compose file runs it as a
one-shot job before the worker and gateway start (docs/deployment.md). ``current`` says which
revision the database is at and whether this release needs an upgrade.
"""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

from starter.cli.output import json_flag
from starter.cli.store_actions import database_flag, database_url, describe, run_store
from store import migrate


class Revision(NamedTuple):
    database: str
    revision: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return not migrate.is_behind(self.revision)

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "revision": self.revision,
            "head": self.head,
            "upToDate": self.up_to_date,
        }


def _upgrade(args: argparse.Namespace) -> int:
    async def action() -> Revision:
        at = await migrate.upgrade(database_url(args), args.revision)
        return Revision(describe(args), at, migrate.head_revision())

    return run_store(
        args, action, lambda r: f"{r.database}: at revision {r.revision}", Revision.to_json
    )


def _render_current(result: Revision) -> str:
    if result.revision is None:
        state = "no schema yet: run cotpay-escrow db upgrade"
    elif result.up_to_date:
        state = "up to date"
    else:
        state = "behind: run cotpay-escrow db upgrade"
    return f"{result.database}: revision {result.revision or '-'} (head {result.head}, {state})"


def _current(args: argparse.Namespace) -> int:
    async def action() -> Revision:
        at = await migrate.current(database_url(args))
        return Revision(describe(args), at, migrate.head_revision())

    return run_store(args, action, _render_current, Revision.to_json)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser(
        "db",
        help="the order store's schema: upgrade it, or show its revision",
        description="Migrations of the order store (ESCROW_DATABASE_URL).",
    )
    commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = commands.add_parser("upgrade", help="create or upgrade the schema (idempotent)")
    upgrade.add_argument(
        "--revision", default=migrate.HEAD, help="the target revision (default: the latest)"
    )
    current = commands.add_parser("current", help="the revision the database is at")
    for command in (upgrade, current):
        database_flag(command)
        json_flag(command)
    upgrade.set_defaults(func=_upgrade)
    current.set_defaults(func=_current)
