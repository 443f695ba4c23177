"""``python -m store upgrade|current|revision``: the store's migrations (docs/store.md).

The CLI ``cotpay-escrow db upgrade`` runs the same ``store.migrate.upgrade``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from store import migrate
from store.errors import StoreUnavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store", description=__doc__)
    parser.add_argument("--url", help="database URL (default: ESCROW_DATABASE_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="upgrade the schema (default: to the latest revision)")
    up.add_argument("--revision", default=migrate.HEAD)
    sub.add_parser("current", help="print the revision the database is at")
    rev = sub.add_parser("revision", help="write a new revision from store/schema.py")
    rev.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    where = migrate.describe(args.url)
    try:
        if args.command == "upgrade":
            at = asyncio.run(migrate.upgrade(args.url, args.revision))
            print(f"{where}: at revision {at}")
        elif args.command == "current":
            print(asyncio.run(migrate.current(args.url)) or "(empty)")
        else:
            asyncio.run(migrate.autogenerate_revision(args.url, args.message))
    except StoreUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
