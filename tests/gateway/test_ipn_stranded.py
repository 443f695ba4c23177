"""Stranded money at the gateway: a HOLDING IPN for an order whose workflow has closed becomes a
money event and an open finding in the order store; while the store is down it gets 503, and
Cotpay's retry is recorded once the store is back (docs/reconciliation.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cotpay.settings import CotpaySettings
from runtime.metrics import IPN_REJECTED
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.gateway.app import create_app
from store.api import OrderStore
from store.models import FindingKind, MoneyKind, OrderWrite
from tests.gateway.conftest import API_KEYS, Backend, order_body
from tests.gateway.ipn_helpers import post_ipn
from workflows.models import OrderView

pytestmark = pytest.mark.timeout(120)

TIME = "2026-11-30T10:15:00+07:00"


async def open_store(path: Path, *, schema: bool = True) -> OrderStore:
    store = OrderStore.open(f"sqlite+aiosqlite:///{path}")
    if schema:
        await store.upgrade()
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[OrderStore]:
    opened = await open_store(tmp_path / "escrow.db")
    try:
        yield opened
    finally:
        await opened.close()


def gateway(
    backend: Backend,
    escrow: EscrowSettings,
    key_file: Path,
    orders: EscrowClient,
    store: OrderStore,
) -> httpx.AsyncClient:
    app = create_app(
        backend.client,
        escrow,
        CotpaySettings(private_key_file=key_file),
        orders=orders,
        store=store,
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {API_KEYS[0]}"},
        timeout=30.0,
    )


@pytest.fixture
async def http(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    store: OrderStore,
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(backend, escrow_settings, merchant_key_file, orders, store) as client:
        yield client


async def closed_order(http: httpx.AsyncClient) -> dict[str, Any]:
    """An order Cotpay refused at once: its workflow has finished (FAILED)."""
    response = await http.post("/v1/orders", json=order_body(sellerId="0009999999"))
    assert response.status_code == 422, response.text
    view: dict[str, Any] = response.json()["order"]
    assert view["status"] == "FAILED"
    return view


def holding(view: dict[str, Any], tx: str = "tx-late-1") -> dict[str, Any]:
    return {
        "idOrder": 1000077,
        "status": "HOLDING",
        "amount": view["amount"],
        "transactionId": tx,
        "time": TIME,
    }


async def mirror(store: OrderStore, view: dict[str, Any]) -> None:
    order = OrderView.model_validate(view)
    await store.record(OrderWrite.from_view(order, created_at=order.timeline[0].time))


async def test_holding_after_close_is_a_money_event_and_a_finding(
    http: httpx.AsyncClient, store: OrderStore
) -> None:
    view = await closed_order(http)
    ref = view["orderRef"]
    await mirror(store, view)
    for _ in range(2):  # Cotpay's retry of the same IPN adds nothing
        response = await post_ipn(http, ref, "verify", holding(view))
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True, "recorded": True}

    events = await store.events(ref)
    assert events is not None
    stranded = [e for e in events if e.money is MoneyKind.IPN_AFTER_CLOSE]
    assert len(stranded) == 1
    (event,) = stranded
    assert (event.kind, event.amount, event.transaction_id, event.cotpay_order_id) == (
        "ipn_after_close",
        view["amount"],
        "tx-late-1",
        1000077,
    )
    assert event.time == datetime.fromisoformat(TIME) and event.seq == len(events)
    (finding,) = await store.list_findings()
    assert (finding.kind, finding.order_ref, finding.key) == (
        FindingKind.IPN_AFTER_CLOSE,
        ref,
        f"{ref}:tx-late-1",
    )
    assert finding.data is not None and finding.data["seq"] == event.seq
    assert finding.data["inStore"] is True and finding.data["ipnStatus"] == "HOLDING"
    report = await store.money_report()
    assert {line.state.value: line.amount for line in report.states}["stranded"] == view["amount"]


async def test_an_order_the_store_does_not_know_still_gets_a_finding(
    http: httpx.AsyncClient, store: OrderStore
) -> None:
    view = await closed_order(http)
    response = await post_ipn(http, view["orderRef"], "verify", holding(view, tx="tx-2"))
    assert response.status_code == 200
    (finding,) = await store.list_findings()
    assert finding.order_ref == view["orderRef"] and finding.data is not None
    assert finding.data["inStore"] is False and finding.data["seq"] is None


async def test_an_ipn_after_close_without_held_money_opens_nothing(
    http: httpx.AsyncClient, store: OrderStore
) -> None:
    view = await closed_order(http)
    await mirror(store, view)
    body = {"idOrder": 1000077, "status": "PAYMENT_FAILED", "time": TIME}
    response = await post_ipn(http, view["orderRef"], "verify", body)
    assert response.status_code == 200
    assert await store.list_findings() == []


async def test_store_down_gives_503_and_the_retry_is_recorded(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    view = await closed_order(http)
    path = tmp_path / "not-yet.db"
    down = await open_store(path, schema=False)  # a database without the store's tables
    before = IPN_REJECTED.labels(reason="store_unavailable")._value.get()
    try:
        async with gateway(backend, escrow_settings, merchant_key_file, orders, down) as gw:
            response = await post_ipn(gw, view["orderRef"], "verify", holding(view))
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "store_unavailable"
            assert IPN_REJECTED.labels(reason="store_unavailable")._value.get() == before + 1

            await down.upgrade()  # the store is back; Cotpay retries the IPN
            response = await post_ipn(gw, view["orderRef"], "verify", holding(view))
            assert response.status_code == 200, response.text
        (finding,) = await down.list_findings()
        assert finding.key == f"{view['orderRef']}:tx-late-1"
    finally:
        await down.close()
