"""Two merchants on two sandbox merchant accounts, isolated end to end (docs/security.md).

Merchant ``default`` is the first sandbox (``COTPAY_*``, as every deployment today); merchant
B is a second sandbox, added to the store with its credentials. Each sandbox accepts only its
own app id and token, so an order reaching the right sandbox proves the worker called Cotpay
with the right merchant's credentials. Keys of each merchant see only their orders (404
otherwise), and merchant A's signed IPN URL cannot move merchant B's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from cotpay.ipn import ipn_signature, ipn_url
from runtime.temporal import TemporalConfig
from sandbox.testing import RunningSandbox, running_sandbox
from starter.gateway.server import running_gateway
from store.access import AccessStore, Actor
from store.api import OrderStore
from tests.webhooks.receiver import Receiver
from workflows.models import EscrowStatus, workflow_id_for

from .driver import IPN_SECRET, escrow_settings, new_order_ref, new_user_id, worker_running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

KEY_A = "merchant-a-shop-key-0123456789"
KEY_B = "merchant-b-shop-key-0123456789"


@dataclass
class TwoMerchants:
    merchant_b: str
    sandbox_a: RunningSandbox
    sandbox_b: RunningSandbox
    gateway: httpx.AsyncClient
    temporal: Client
    public_url: str

    def headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    async def users(self, sandbox: RunningSandbox) -> tuple[str, str]:
        seller, buyer = new_user_id(), new_user_id()
        for user in (seller, buyer):
            body = {"name": "Merchant test", "walletLinked": True, "bankLinked": True}
            r = await sandbox.admin.put(f"/sandbox/users/{user}", json=body)
            assert r.status_code < 300, r.text
        return seller, buyer

    async def start(
        self, key: str, sandbox: RunningSandbox, ref: str, amount: int = 150_000
    ) -> dict[str, Any]:
        seller, buyer = await self.users(sandbox)
        body = {"orderRef": ref, "sellerId": seller, "buyerId": buyer, "amount": amount}
        r = await self.gateway.post("/v1/orders", json=body, headers=self.headers(key))
        assert r.status_code == 201, r.text
        view: dict[str, Any] = r.json()
        return view

    async def view(self, key: str, ref: str) -> httpx.Response:
        return await self.gateway.get(f"/v1/orders/{ref}", headers=self.headers(key))

    async def wait_status(self, key: str, ref: str, status: str, within: float = 30) -> None:
        deadline = time.monotonic() + within
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                r = await self.view(key, ref)
                last = r.json()
                if r.status_code == 200 and last["status"] == status:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{ref}: not {status} within {within}s; last {last}")


async def _ledger(sandbox: RunningSandbox, id_order: int) -> dict[str, Any] | None:
    r = await sandbox.admin.get("/sandbox/ledger")
    assert r.status_code == 200
    for entry in r.json()["orders"]:
        if entry["idOrder"] == id_order:
            found: dict[str, Any] = entry
            return found
    return None


@pytest.fixture(scope="module")
async def two(
    temporal_settings: TemporalConfig,
    temporal_client: Client,
    sandbox: RunningSandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[TwoMerchants]:
    work = tmp_path_factory.mktemp("merchants")
    merchant_b = f"shopb-{secrets.token_hex(3)}"
    # The store every process of this test opens (ESCROW_DATABASE_URL of the session).
    access = AccessStore.open()
    await OrderStore(access.db).ensure_schema()
    task_queue = f"merchants-{secrets.token_hex(4)}"
    temporal = TemporalConfig(
        address=temporal_settings.address, namespace="default", task_queue=task_queue
    )
    async with running_sandbox(work / "keys-b", payout_rule="immediate") as sandbox_b:
        await access.add_merchant(
            merchant_b,
            by=Actor("test"),
            base_url=sandbox_b.base_url,
            app_id=sandbox_b.keys.app_id,
            access_token_file=str(sandbox_b.credentials_file),
            public_key_file=str(sandbox_b.keys.cotpay_public_file),
            private_key_file=str(sandbox_b.keys.merchant_private_file),
        )
        keys = f"{KEY_A}:shop,{KEY_B}:shop:{merchant_b}"
        gateway_settings = escrow_settings("http://127.0.0.1:9").model_copy(
            update={"api_keys": keys}
        )
        async with running_gateway(
            temporal_client,
            gateway_settings,
            sandbox.cotpay_settings(),
            task_queue=task_queue,
            search_salt=None,
            access=access,
        ) as url:
            worker_settings = escrow_settings(url)
            async with (
                worker_running(temporal, sandbox.cotpay_settings(), worker_settings),
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield TwoMerchants(
                    merchant_b, sandbox, sandbox_b, http, temporal_client, public_url=url
                )
    await access.close()


async def test_each_merchants_orders_go_to_its_own_cotpay_account(two: TwoMerchants) -> None:
    """Both merchants use the SAME orderRef: two orders, in two Cotpay accounts, two store rows
    and event logs, each merchant's webhooks only about its own order."""
    async with Receiver() as hooks_a, Receiver() as hooks_b:
        await _same_ref_end_to_end(two, hooks_a, hooks_b)


async def _endpoint(two: TwoMerchants, key: str, receiver: Receiver) -> str:
    r = await two.gateway.post(
        "/v1/webhook-endpoints", json={"url": receiver.url}, headers=two.headers(key)
    )
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    return secret


async def _same_ref_end_to_end(two: TwoMerchants, hooks_a: Receiver, hooks_b: Receiver) -> None:
    secret_a = await _endpoint(two, KEY_A, hooks_a)
    secret_b = await _endpoint(two, KEY_B, hooks_b)
    ref = new_order_ref("same-ref")  # both merchants use the same orderRef
    a = await two.start(KEY_A, two.sandbox_a, ref)
    b = await two.start(KEY_B, two.sandbox_b, ref, amount=99_000)
    assert a["workflowId"] == workflow_id_for(ref) == f"escrow-{ref}"
    assert b["workflowId"] == f"escrow:{two.merchant_b}:{ref}"
    # Each order exists in its own merchant's Cotpay account only.
    assert (await two.sandbox_a.admin.get(f"/sandbox/orders/{a['cotpayOrderId']}")).json()[
        "amount"
    ] == 150_000
    assert (await two.sandbox_b.admin.get(f"/sandbox/orders/{b['cotpayOrderId']}")).json()[
        "amount"
    ] == 99_000

    # Money moves in each account, through each merchant's signed IPN URLs.
    for key, sandbox, view in ((KEY_B, two.sandbox_b, b), (KEY_A, two.sandbox_a, a)):
        r = await sandbox.admin.post(
            f"/sandbox/orders/{view['cotpayOrderId']}/pay", json={"outcome": "success"}
        )
        assert r.status_code < 300, r.text
        await two.wait_status(key, ref, EscrowStatus.HELD)
        r = await two.gateway.post(f"/v1/orders/{ref}/delivered", json={}, headers=two.headers(key))
        assert r.status_code == 200, r.text
        await two.wait_status(key, ref, EscrowStatus.PAID_OUT)
    ledger_b = await _ledger(two.sandbox_b, b["cotpayOrderId"])
    ledger_a = await _ledger(two.sandbox_a, a["cotpayOrderId"])
    assert ledger_b is not None and len(ledger_b["payouts"]) == 1
    assert ledger_a is not None and len(ledger_a["payouts"]) == 1
    assert ledger_b["amount"] == 99_000 and ledger_a["amount"] == 150_000

    # The order store: two rows and two event logs under the same orderRef.
    store = OrderStore.open()
    try:
        row_a, row_b = await store.get_row(ref), await store.get_row(ref, two.merchant_b)
        assert row_a is not None and row_b is not None
        assert (row_a.merchant, row_a.workflow_id, row_a.amount) == (
            "default",
            a["workflowId"],
            150_000,
        )
        assert (row_b.merchant, row_b.workflow_id, row_b.amount) == (
            two.merchant_b,
            b["workflowId"],
            99_000,
        )
    finally:
        await store.close()
    # Each merchant's reads and events come from the store and are its own order's.
    for key, view, amount in ((KEY_A, a, 150_000), (KEY_B, b, 99_000)):
        seen = await two.view(key, ref)
        assert seen.headers["x-escrow-source"] == "store", seen.json()
        assert (seen.json()["workflowId"], seen.json()["amount"]) == (view["workflowId"], amount)
        events = await two.gateway.get(f"/v1/orders/{ref}/events", headers=two.headers(key))
        assert events.status_code == 200 and events.json()["source"] == "store"
        logged = events.json()["events"]
        assert [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
        held = [e for e in logged if e.get("money") == "held"]
        assert len(held) == 1 and held[0]["amount"] == amount, logged
        assert [e for e in logged if e.get("money") == "paid_out"], logged
        listed = await two.gateway.get("/v1/orders", headers=two.headers(key))
        mine = [o for o in listed.json()["orders"] if o["orderRef"] == ref]
        assert [o["amount"] for o in mine] == [amount]

    # Webhooks: each merchant's endpoint gets its own order's status changes only, signed with
    # its own secret, up to PAID_OUT; the two merchants' event ids differ.
    def paid_out(receiver: Receiver) -> bool:
        return any(
            r.event["type"] == "order.paid_out" and r.event["data"]["orderRef"] == ref
            for r in receiver.acknowledged()
        )

    await hooks_a.wait_for(paid_out, within=60)
    await hooks_b.wait_for(paid_out, within=60)
    ids: dict[str, set[str]] = {}
    for receiver, secret, view, amount in (
        (hooks_a, secret_a, a, 150_000),
        (hooks_b, secret_b, b, 99_000),
    ):
        about_ref = [r for r in receiver.acknowledged() if r.event["data"]["orderRef"] == ref]
        assert about_ref and all(r.signed_by(secret) for r in about_ref)
        assert {r.event["data"]["workflowId"] for r in about_ref} == {view["workflowId"]}
        assert {r.event["data"]["amount"] for r in about_ref} == {amount}
        types = [r.event["type"] for r in about_ref]
        assert "order.held" in types and types[-1] == "order.paid_out", types
        ids[view["workflowId"]] = {r.event_id for r in about_ref}
    assert not ids[a["workflowId"]] & ids[b["workflowId"]]


async def test_a_key_never_sees_another_merchants_order(two: TwoMerchants) -> None:
    only_a = new_order_ref("only-a")
    only_b = new_order_ref("only-b")
    await two.start(KEY_A, two.sandbox_a, only_a)
    await two.start(KEY_B, two.sandbox_b, only_b)
    missing = await two.view(KEY_A, new_order_ref("nobody"))
    assert missing.status_code == 404
    for key, ref in ((KEY_A, only_b), (KEY_B, only_a)):
        seen = await two.view(key, ref)
        assert seen.status_code == 404
        # exactly like an order that does not exist: existence does not leak
        assert seen.json() == {"error": "order_not_found", "message": f"no order {ref!r}"}
        assert missing.json()["error"] == "order_not_found"
        for action in ("delivered", "dispute", "cancel"):
            r = await two.gateway.post(
                f"/v1/orders/{ref}/{action}", json={}, headers=two.headers(key)
            )
            assert r.status_code == 404, (action, r.text)
    assert (await two.view(KEY_A, only_a)).json()["status"] == EscrowStatus.AWAITING_PAYMENT
    assert (await two.view(KEY_B, only_b)).json()["status"] == EscrowStatus.AWAITING_PAYMENT


async def test_merchant_as_ipn_url_cannot_move_merchant_bs_order(two: TwoMerchants) -> None:
    ref = new_order_ref("ipn-iso")
    a = await two.start(KEY_A, two.sandbox_a, ref)
    b = await two.start(KEY_B, two.sandbox_b, ref)
    holding_b = {"idOrder": b["cotpayOrderId"], "status": "HOLDING", "amount": b["amount"]}

    url_a = ipn_url(two.public_url, IPN_SECRET, ref, "payment")
    sig_a = url_a.rsplit("sig=", 1)[1]
    # A's signature with B's merchant named: refused before anything is read.
    forged = await two.gateway.post(
        f"/ipn/{ref}/payment", params={"m": two.merchant_b, "sig": sig_a}, json=holding_b
    )
    assert forged.status_code == 403, forged.text
    # B's signature without the merchant (so aimed at A's order): refused too.
    sig_b = ipn_signature(IPN_SECRET, ref, "payment", two.merchant_b)
    stripped = await two.gateway.post(f"/ipn/{ref}/payment", params={"sig": sig_b}, json=holding_b)
    assert stripped.status_code == 403, stripped.text
    # A's own valid URL, whatever the body says, reaches A's order only. (The two sandboxes
    # number their orders alike, so B's idOrder may be A's as well: A's order may move.)
    delivered = await two.gateway.post(f"/ipn/{ref}/payment", params={"sig": sig_a}, json=holding_b)
    assert delivered.status_code == 200, delivered.text
    await asyncio.sleep(0.5)
    view_b = (await two.view(KEY_B, ref)).json()
    view_a = (await two.view(KEY_A, ref)).json()
    assert view_b["status"] == EscrowStatus.AWAITING_PAYMENT
    assert any(e["kind"].startswith("ipn") for e in view_a["timeline"])
    assert not any(e["kind"].startswith("ipn") for e in view_b["timeline"])
    ledger_b = await _ledger(two.sandbox_b, b["cotpayOrderId"])
    assert ledger_b is not None and ledger_b["holds"] == []
    assert a["cotpayOrderId"] is not None


def test_the_default_merchants_ids_and_urls_are_unchanged() -> None:
    assert workflow_id_for("shop-1001") == "escrow-shop-1001"
    url = ipn_url("https://escrow.example.com", "s" * 40, "shop-1001", "payment")
    assert url == (
        "https://escrow.example.com/ipn/shop-1001/payment?sig="
        + ipn_signature("s" * 40, "shop-1001", "payment")
    )
    assert "m=" not in url
