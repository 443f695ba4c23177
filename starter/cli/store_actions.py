"""Running one order-store action from a command: open the store, act, print, map errors.

The store is ``--database-url``, else ``ESCROW_DATABASE_URL`` (default: the SQLite file
``.data/escrow.db``, docs/store.md). Reads refuse a SQLite file that does not exist rather
than create an empty one. Exit codes as for every command: 0 done, 1 refused or failed
(``invalid_date``, ``store_unavailable``, ``config_error``, ...), 2 usage (docs/cli.md).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from starter.cli.output import emit, fail
from store.api import OrderStore
from store.db import normalize_url, safe_url
from store.errors import InvalidQuery, StoreError, StoreUnavailable
from store.settings import StoreSettings

_T = TypeVar("_T")


class NoStore(StoreError):
    """A read on a SQLite store that was never created."""


def database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="the order store (default ESCROW_DATABASE_URL, else sqlite .data/escrow.db)",
    )


def database_url(args: argparse.Namespace) -> str:
    url: str = getattr(args, "database_url", None) or StoreSettings().database_url
    return url


def describe(args: argparse.Namespace) -> str:
    """The store's URL for output, password hidden."""
    return safe_url(normalize_url(database_url(args)))


async def with_store(args: argparse.Namespace, action: Callable[[OrderStore], Awaitable[_T]]) -> _T:
    """Run ``action`` on the store of ``args``, then close it."""
    url = normalize_url(database_url(args))
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise NoStore(
            f"no order store at {missing}: start the worker or gateway once, or run "
            "cotpay-escrow db upgrade"
        )
    async with OrderStore.open(url) as store:
        return await action(store)


def _missing_sqlite_file(url: URL) -> str | None:
    database = url.database or ""
    if not url.drivername.startswith("sqlite") or not database or database.startswith(":"):
        return None
    return None if Path(database).exists() else database


def run_store(
    args: argparse.Namespace,
    action: Callable[[], Coroutine[Any, Any, _T]],
    render: Callable[[_T], str] | None,
    to_json: Callable[[_T], Any] | None,
    exit_code: Callable[[_T], int] = lambda _result: 0,
) -> int:
    """Run ``action`` (which reaches the store) and print its result (nothing when ``render``
    is None: the action wrote its own output); errors exit 1."""
    try:
        result = asyncio.run(action())
    except InvalidQuery as exc:
        return fail(args, exc.code, exc.message)
    except NoStore as exc:
        return fail(args, "store_unavailable", str(exc))
    except StoreUnavailable as exc:
        return fail(args, "store_unavailable", str(exc))
    except (ValueError, ArgumentError) as exc:
        return fail(args, "config_error", f"ESCROW_DATABASE_URL: {exc}")
    if render is not None and to_json is not None:
        emit(args, render(result), to_json(result))
    return exit_code(result)
