"""Where the sandbox keeps its users, orders, ledger and order-id sequence.

In memory by default. With a SQLite file every change is written through synchronously (it is a
sandbox) and loaded back at start, so a restarted sandbox keeps its state. The ledger table has a
UNIQUE ``guard`` column (``{idOrder}:hold`` / ``{idOrder}:out``) so that even two sandbox
processes sharing one file cannot record two payouts (or a payout and a refund) for one order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sandbox.domain import FIRST_ORDER_ID, LedgerEntry, Order, User

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id_order INTEGER PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id_order INTEGER NOT NULL,
    kind TEXT NOT NULL,
    guard TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Store:
    def __init__(self, db_file: Path | None = None) -> None:
        self.users: dict[str, User] = {}
        self.orders: dict[int, Order] = {}
        self.ledger: list[LedgerEntry] = []
        self._by_order: dict[int, list[LedgerEntry]] = {}
        self._by_code: dict[tuple[str, str], int] = {}
        self._guards: set[str] = set()
        self._next_id = FIRST_ORDER_ID
        self._db: sqlite3.Connection | None = None
        if db_file is not None:
            self._open(db_file)

    def _open(self, db_file: Path) -> None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(db_file, isolation_level=None, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('next_id', ?)", (FIRST_ORDER_ID,))
        for (doc,) in db.execute("SELECT doc FROM users"):
            user = User.model_validate_json(doc)
            self.users[user.id] = user
        for (doc,) in db.execute("SELECT doc FROM orders ORDER BY id_order"):
            self._index(Order.model_validate_json(doc))
        for (doc,) in db.execute("SELECT doc FROM ledger ORDER BY seq"):
            entry = LedgerEntry.model_validate_json(doc)
            self._append(entry)
        self._db = db

    @property
    def persistent(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def next_order_id(self) -> int:
        if self._db is None:
            value = self._next_id
            self._next_id += 1
            return value
        row = self._db.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'next_id' RETURNING value - 1"
        ).fetchone()
        return int(row[0])

    def save_user(self, user: User) -> None:
        self.users[user.id] = user
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO users VALUES (?, ?)", (user.id, user.model_dump_json())
            )

    def _index(self, order: Order) -> None:
        self.orders[order.idOrder] = order
        if order.orderCode is not None:
            self._by_code[(order.partnerId, order.orderCode)] = order.idOrder

    def _append(self, entry: LedgerEntry) -> None:
        self.ledger.append(entry)
        self._by_order.setdefault(entry.idOrder, []).append(entry)
        self._guards.add(entry.guard)

    def find_by_code(self, partner_id: str, order_code: str) -> Order | None:
        id_order = self._by_code.get((partner_id, order_code))
        return self.orders.get(id_order) if id_order is not None else None

    def save_order(self, order: Order) -> None:
        self._index(order)
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO orders VALUES (?, ?)",
                (order.idOrder, order.model_dump_json()),
            )

    def has_entry(self, entry: LedgerEntry) -> bool:
        return entry.guard in self._guards

    def record(self, entry: LedgerEntry, order: Order) -> bool:
        """Append ``entry`` and save ``order`` atomically; False if the guard is already taken."""
        if entry.guard in self._guards:
            return False
        if self._db is not None:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO ledger (id_order, kind, guard, doc) VALUES (?, ?, ?, ?)",
                    (entry.idOrder, entry.kind, entry.guard, entry.model_dump_json()),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO orders VALUES (?, ?)",
                    (order.idOrder, order.model_dump_json()),
                )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                self._guards.add(entry.guard)
                return False
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        self._append(entry)
        self._index(order)
        return True

    def entries_for(self, id_order: int) -> list[LedgerEntry]:
        return list(self._by_order.get(id_order, ()))
