"""``escrow_reconcile_findings{kind}``: the open findings of the store, refreshed by the gateway."""

from __future__ import annotations

import asyncio

from runtime.metrics import RECONCILE_FINDINGS, findings_gauge_loop
from store import reconcile
from store.api import OrderStore
from store.models import FindingKind


def gauge(kind: FindingKind) -> float:
    value: float = RECONCILE_FINDINGS.labels(kind=kind.value)._value.get()
    return value


async def test_the_gauge_follows_open_findings(store: OrderStore) -> None:
    RECONCILE_FINDINGS.labels(kind=FindingKind.LEDGER_MISMATCH.value).set(7)  # stale
    first = await store.open_finding(FindingKind.PAST_DEADLINE, order_ref="a")
    await store.open_finding(FindingKind.PAST_DEADLINE, order_ref="b")
    stop = asyncio.Event()
    kinds = [kind.value for kind in FindingKind]
    task = asyncio.create_task(
        findings_gauge_loop(lambda: reconcile.open_counts(store.db), kinds, stop, interval=0.05)
    )
    try:
        for expected in (2, 1):
            for _ in range(100):
                if gauge(FindingKind.PAST_DEADLINE) == expected:
                    break
                await asyncio.sleep(0.02)
            assert gauge(FindingKind.PAST_DEADLINE) == expected
            assert gauge(FindingKind.LEDGER_MISMATCH) == 0
            await store.close_finding(first.id, "ops")
    finally:
        stop.set()
        await task
