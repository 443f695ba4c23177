"""Findings: open once per kind and key, listed until an operator closes them."""

from __future__ import annotations

import asyncio

import pytest

from store.api import OrderStore
from store.errors import FindingNotFound
from store.models import FindingFilter, FindingKind

K = FindingKind


async def test_open_list_close(store: OrderStore) -> None:
    first = await store.open_finding(
        K.IPN_AFTER_CLOSE, order_ref="o-1", detail="HOLDING sau khi đóng", data={"amount": 150_000}
    )
    again = await store.open_finding(K.IPN_AFTER_CLOSE, order_ref="o-1", detail="second run")
    assert again == first and again.detail == "HOLDING sau khi đóng"
    other = await store.open_finding(K.PAST_DEADLINE, order_ref="o-1")
    ledger = await store.open_finding(K.LEDGER_MISMATCH, key="ledger:2026-11-30")
    assert ledger.order_ref is None and ledger.key == "ledger:2026-11-30"
    assert K.IPN_AFTER_CLOSE.stranded and not K.PAST_DEADLINE.stranded

    assert [f.id for f in await store.list_findings()] == [first.id, other.id, ledger.id]
    assert [f.id for f in await store.list_findings(FindingFilter(kind=K.PAST_DEADLINE))] == [
        other.id
    ]
    assert len(await store.list_findings(FindingFilter(order_ref="o-1"))) == 2

    closed = await store.close_finding(first.id, "ops-anna", "refunded by hand")
    assert closed.closed_at is not None and closed.closed_by == "ops-anna"
    assert (await store.close_finding(first.id, "someone-else")) == closed
    assert [f.id for f in await store.list_findings()] == [other.id, ledger.id]
    everything = await store.list_findings(FindingFilter(open_only=False))
    assert {f.id for f in everything} == {first.id, other.id, ledger.id}

    # Once closed, the same anomaly seen again is a new finding.
    reopened = await store.open_finding(K.IPN_AFTER_CLOSE, order_ref="o-1")
    assert reopened.id != first.id and reopened.closed_at is None

    with pytest.raises(FindingNotFound):
        await store.close_finding(999_999, "ops")
    with pytest.raises(ValueError):
        await store.open_finding(K.PAST_DEADLINE)


async def test_concurrent_opens_make_one_finding(store: OrderStore) -> None:
    found = await asyncio.gather(
        *(store.open_finding(K.PAYOUT_IN_DOUBT, order_ref="o-2") for _ in range(5))
    )
    assert len({f.id for f in found}) == 1
    assert len(await store.list_findings(FindingFilter(order_ref="o-2"))) == 1
