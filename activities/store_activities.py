"""The order-store activity: the workflow's one write to the store (docs/store.md, The write path).

The worker owns the ``OrderStore`` (one engine, one pool) and hands it to ``StoreActivities``.
The workflow calls ``record`` by reference (``workflows/store_writes.py``); its registered name
``store.record`` is the contract running orders replay, and never changes.

Why retrying ``store.record`` is safe, so that its retries can be unlimited:

* A write is one transaction (``store.orders.record``): its events and the ``orders`` row are
  stored together or not at all. An attempt that fails (store down, locked, timed out, worker
  killed) left nothing half-written.
* Events are keyed by (orderRef, seq) and inserted with ``ON CONFLICT DO NOTHING``: an attempt
  whose answer was lost (it committed, then the connection or the worker died) and is repeated
  inserts nothing the second time, and an existing event is never changed.
* The ``orders`` row moves only forward, to a greater (lastSeq, revision): a repeated or late
  write never puts an older view back.
* The activity calls nothing else: no Cotpay call, no message. Only the store sees a retry.

A store outage therefore only delays the store: the workflow's single writer retries the same
write with backoff (capped at a minute) until the store answers, while payouts, refunds and
timers go on (``workflows/escrow.py``).

Local attempts (patch ``store-local-writes``): the workflow first runs ``record`` once as a local
activity, which holds the order's workflow task open (bounded by its 2 s start-to-close
timeout), and falls back to the regular activity when it fails. So that an outage costs that
wait only at its onset, a local attempt gives up at once, without touching the store, while this
worker's last attempt at the store failed less than ``LOCAL_SKIP_AFTER_FAILURE`` ago; any
attempt that reaches the store and succeeds ends that.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from store.errors import StoreUnavailable
from store.models import OrderWrite, WriteResult

if TYPE_CHECKING:  # the workflow imports this class for typed calls: keep it free of SQLAlchemy
    from store.api import OrderStore

log = structlog.get_logger("activities.store")

STORE_UNAVAILABLE = "StoreUnavailable"
# After a failed attempt, local attempts give up at once for this long (seconds).
LOCAL_SKIP_AFTER_FAILURE = 30.0


class StoreActivities:
    def __init__(self, store: OrderStore, *, clock: Any = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._failed_at: float | None = None

    @activity.defn(name="store.record")
    async def record(self, write: OrderWrite) -> WriteResult:
        """Write one batch of the order's events and its current view (idempotent)."""
        info = activity.info()
        bound = log.bind(order_ref=write.order_ref, last_seq=write.last_seq, attempt=info.attempt)
        failed_at = self._failed_at
        if (
            info.is_local
            and failed_at is not None
            and self._clock() - failed_at < LOCAL_SKIP_AFTER_FAILURE
        ):
            # Do not hold the workflow task for a store that just failed: the workflow sends
            # this write as the regular activity instead.
            raise ApplicationError(
                "order store failed recently; local attempt skipped", type=STORE_UNAVAILABLE
            )
        try:
            result = await self._store.record(write)
        except StoreUnavailable as exc:
            self._failed_at = self._clock()
            bound.warning("store.write.unavailable", error=str(exc), local=info.is_local)
            # Retryable: the workflow's retry policy tries again with backoff, without end.
            raise ApplicationError(str(exc), type=STORE_UNAVAILABLE) from None
        except asyncio.CancelledError:  # timed out (a hung store) or the worker stops
            self._failed_at = self._clock()
            raise
        self._failed_at = None
        bound.debug(
            "store.write.ok",
            events=len(write.events),
            inserted=result.events_inserted,
            moved=result.order_moved,
        )
        return result

    def all(self) -> list[Any]:
        """Every activity of this class, for ``Worker(activities=...)``."""
        return [self.record]
