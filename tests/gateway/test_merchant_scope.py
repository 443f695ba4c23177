"""The order store's reads and the webhook endpoints see only the caller's merchant
(docs/security.md): another merchant's order answers 404 exactly like a missing one, its rows are
not listed, exported or counted, its webhook endpoints are not found; every webhook endpoint
change is an audit event with the caller's key."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.gateway.app import create_app
from store.access import AccessStore
from store.access_models import AuditFilter
from store.api import OrderStore
from tests.gateway.conftest import Backend, new_ref, order_body
from tests.store.factories import event, write
from workflows.models import EscrowStatus

pytestmark = pytest.mark.timeout(120)

KEYS = {
    "default viewer": "scope-default-viewer-0123456789",
    "default shop": "scope-default-shop-0123456789ab",
    "acme viewer": "scope-acme-viewer-0123456789abc",
    "acme shop": "scope-acme-shop-0123456789abcdef",
}
ROLES = {
    "default viewer": "viewer:default",
    "default shop": "shop:default",
    "acme viewer": "viewer:acme",
    "acme shop": "shop:acme",
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[OrderStore]:
    opened = OrderStore.open(f"sqlite+aiosqlite:///{tmp_path / 'escrow.db'}")
    await opened.upgrade()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def app(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    store: OrderStore,
) -> FastAPI:
    keys = ",".join(f"{KEYS[name]}:{ROLES[name]}" for name in KEYS)
    escrow = escrow_settings.model_copy(update={"api_keys": keys})
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    return create_app(backend.client, escrow, cotpay, orders=orders, store=store)


def as_(app: FastAPI, caller: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {KEYS[caller]}"},
        timeout=30.0,
    )


async def test_one_app_one_database(app: FastAPI, store: OrderStore) -> None:
    context = app.state.gateway
    assert context.store is store
    assert context.access is not None and context.access.db is store.db
    assert app.state.webhooks.get().db is store.db


async def test_reads_see_only_the_callers_merchant(app: FastAPI, store: OrderStore) -> None:
    created = datetime.now(UTC) - timedelta(hours=1)
    mine, theirs = new_ref("scope-d"), new_ref("scope-a")
    for ref, merchant, amount in ((mine, "default", 111_000), (theirs, "acme", 222_000)):
        await store.record(
            write(
                ref,
                EscrowStatus.AWAITING_PAYMENT,
                [event(1, created)],
                created_at=created,
                merchant=merchant,
                amount=amount,
            )
        )
    async with as_(app, "default viewer") as default, as_(app, "acme viewer") as acme:
        assert (await default.get(f"/v1/orders/{mine}")).status_code == 200
        for path in (f"/v1/orders/{mine}", f"/v1/orders/{mine}/events"):
            other = await acme.get(path)
            missing = await acme.get(path.replace(mine, new_ref("nothing")))
            assert other.status_code == missing.status_code == 404, path
            assert other.json()["error"] == missing.json()["error"]
        assert (await acme.get(f"/v1/orders/{theirs}/events")).status_code == 200

        listed = {o["orderRef"] for o in (await acme.get("/v1/orders")).json()["orders"]}
        assert theirs in listed and mine not in listed

        start, end = (created - timedelta(days=1)).date(), (created + timedelta(days=1)).date()
        export = await acme.get(f"/v1/exports/orders.csv?from={start}&to={end}")
        assert export.status_code == 200
        rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
        assert {row["orderRef"] for row in rows} == {theirs}

        report = (await acme.get("/v1/reports/money")).json()
        total = sum(line["amount"] for line in report["states"])
        assert total == 222_000, report


async def test_the_same_order_ref_of_two_merchants(app: FastAPI, store: OrderStore) -> None:
    """Both merchants have orderRef ``ref`` in the store: each reads, lists, exports and
    counts its own order only; ``order_ref_used`` (409) is about the caller's merchant only:
    acme's old order does not stop the default merchant from using the ref, nor leak it."""
    created = datetime.now(UTC) - timedelta(hours=1)
    ref = new_ref("same")
    await store.record(
        write(
            ref,
            EscrowStatus.PAID_OUT,
            [event(1, created), event(2, created, status=EscrowStatus.PAID_OUT)],
            created_at=created,
            merchant="acme",
            amount=222_000,
        )
    )
    async with as_(app, "default shop") as default, as_(app, "acme shop") as acme:
        # acme's workflow is long gone (Temporal does not know it): acme may not reuse the ref.
        again = await acme.post("/v1/orders", json=order_body(ref))
        assert again.status_code == 409, again.text
        assert again.json()["error"] == "order_ref_used"
        # The default merchant never used it: its start goes ahead.
        started = await default.post("/v1/orders", json=order_body(ref, amount=111_000))
        assert started.status_code == 201, started.text
        await store.record(
            write(
                ref,
                EscrowStatus.AWAITING_PAYMENT,
                [event(1, created + timedelta(minutes=1))],
                created_at=created,
                amount=111_000,
            )
        )
        mine = await default.get(f"/v1/orders/{ref}")
        theirs = await acme.get(f"/v1/orders/{ref}")
        assert (mine.json()["amount"], mine.json()["status"]) == (111_000, "AWAITING_PAYMENT")
        assert (theirs.json()["amount"], theirs.json()["status"]) == (222_000, "PAID_OUT")
        assert theirs.headers["x-escrow-source"] == "store"
        assert len((await default.get(f"/v1/orders/{ref}/events")).json()["events"]) == 1
        assert len((await acme.get(f"/v1/orders/{ref}/events")).json()["events"]) == 2
        for client, amount in ((default, 111_000), (acme, 222_000)):
            listed = (await client.get("/v1/orders")).json()["orders"]
            assert [(o["orderRef"], o["amount"]) for o in listed] == [(ref, amount)]
            start, end = (created - timedelta(days=1)).date(), (created + timedelta(days=1)).date()
            export = await client.get(f"/v1/exports/orders.csv?from={start}&to={end}")
            rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
            assert [(r["orderRef"], r["amount"]) for r in rows] == [(ref, str(amount))]
        report = (await acme.get("/v1/reports/money")).json()
        assert {line["state"]: line["amount"] for line in report["states"]}["paid_out"] == 222_000


async def test_webhook_endpoints_are_the_merchants_and_audited(
    app: FastAPI, store: OrderStore
) -> None:
    async with as_(app, "default shop") as default, as_(app, "acme shop") as acme:
        made = await default.post(
            "/v1/webhook-endpoints",
            json={"url": "http://127.0.0.1:9/hooks?token=shop-own-token", "description": "d"},
        )
        assert made.status_code == 201, made.text
        endpoint = made.json()["id"]
        assert (await acme.get(f"/v1/webhook-endpoints/{endpoint}")).status_code == 404
        assert (await acme.delete(f"/v1/webhook-endpoints/{endpoint}")).status_code == 404
        assert (await acme.get("/v1/webhook-endpoints")).json()["endpoints"] == []
        changed = await default.patch(f"/v1/webhook-endpoints/{endpoint}", json={"enabled": False})
        assert changed.status_code == 200, changed.text
        rotated = await default.post(f"/v1/webhook-endpoints/{endpoint}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        assert (await default.delete(f"/v1/webhook-endpoints/{endpoint}")).status_code == 204
    async with as_(app, "default viewer") as viewer:
        refused = await viewer.get("/v1/webhook-endpoints")
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"

    events = await AccessStore(store.db).list_audit(AuditFilter(action="webhook_endpoint."))
    assert sorted(e.action for e in events if e.target == endpoint) == [
        "webhook_endpoint.create",
        "webhook_endpoint.delete",
        "webhook_endpoint.rotate_secret",
        "webhook_endpoint.update",
    ]
    for audit_event in events:
        assert audit_event.merchant == "default"
        assert audit_event.actor.startswith("key:env-key-2 (")
        assert audit_event.key_id == "env-2"
        assert "shop-own-token" not in str(audit_event.data), "a URL's query is never audited"
