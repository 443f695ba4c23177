"""Every update's answer equals the ``GET`` that follows it, field by field (docs/http-api.md).

``delivered``, ``dispute``, ``cancel`` and the operator's ``retry``, ``release`` and ``refund``:
the answer carries the status, ``waitingFor`` (with its deadline), ``payoutNotBefore`` and the
other times a status read returns a moment later. Where the next step calls Cotpay (a return
request, a payout), the fake holds the call (``GatewayCotpay.gates``) so the read happens while
it runs, as a shop's read a moment later would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import GatewayCotpay, new_ref, order_body
from tests.gateway.ipn_helpers import post_ipn

pytestmark = pytest.mark.timeout(120)

COMPARED = (
    "status",
    "waitingFor",
    "payoutNotBefore",
    "heldAt",
    "deliveredAt",
    "paidOutAt",
    "refundedAt",
    "attention",
    "cotpayOrderId",
    "payoutRule",
)


def same_fields(answer: dict[str, Any], read: dict[str, Any]) -> None:
    for name in COMPARED:
        assert answer[name] == read[name], f"{name}: answer {answer[name]!r}, GET {read[name]!r}"


async def read(http: httpx.AsyncClient, ref: str) -> dict[str, Any]:
    response = await http.get(f"/v1/orders/{ref}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until_status(http: httpx.AsyncClient, ref: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        view = await read(http, ref)
        if view["status"] == status:
            return view
        assert time.monotonic() < deadline, f"{ref} is {view['status']}, not {status}"
        await asyncio.sleep(0.1)


async def held_order(http: httpx.AsyncClient, ref: str | None = None, **body: Any) -> str:
    start = order_body(ref, **body)
    view = (await http.post("/v1/orders", json=start)).json()
    ipn = {"idOrder": view["cotpayOrderId"], "status": "HOLDING", "amount": start["amount"]}
    assert (await post_ipn(http, start["orderRef"], "verify", ipn)).status_code == 200
    await until_status(http, start["orderRef"], "HELD")
    return str(start["orderRef"])


async def post(http: httpx.AsyncClient, path: str, body: Any = None) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
async def gated(cotpay_fake: GatewayCotpay) -> AsyncIterator[list[str]]:
    """Order refs whose Cotpay money calls wait until the test ends."""
    refs: list[str] = []
    yield refs
    for ref in refs:
        cotpay_fake.gates.setdefault(ref, asyncio.Event()).set()


def gate(cotpay_fake: GatewayCotpay, gated: list[str], ref: str) -> None:
    cotpay_fake.gates[ref] = asyncio.Event()
    gated.append(ref)


async def test_delivered_answers_the_payout_instant_and_the_waiting_line(
    http: httpx.AsyncClient,
) -> None:
    ref = await held_order(http)
    answer = await post(http, f"/v1/orders/{ref}/delivered", {"note": "signed"})
    same_fields(answer, await read(http, ref))
    assert answer["status"] == "DELIVERED"
    assert answer["payoutNotBefore"] is not None
    assert answer["waitingFor"].startswith("Delivered; waiting for the payout slot since ")


async def test_dispute_answers_the_return_request_underway(
    http: httpx.AsyncClient, cotpay_fake: GatewayCotpay, gated: list[str]
) -> None:
    ref = await held_order(http)
    gate(cotpay_fake, gated, ref)
    answer = await post(http, f"/v1/orders/{ref}/dispute", {"reason": "torn"})
    same_fields(answer, await read(http, ref))
    assert answer["status"] == "RETURN_REQUESTED"
    assert answer["waitingFor"].startswith("Requesting a return since ")


async def test_cancel_answers_the_watch_for_a_late_payment(http: httpx.AsyncClient) -> None:
    ref = (await http.post("/v1/orders", json=order_body())).json()["orderRef"]
    answer = await post(http, f"/v1/orders/{ref}/cancel", {"reason": "out of stock"})
    same_fields(answer, await read(http, ref))
    assert answer["status"] == "CANCELLED"
    assert answer["waitingFor"].startswith("CANCELLED; watching for a late payment since ")


async def _needs_attention_at_payment(http: httpx.AsyncClient, cotpay_fake: GatewayCotpay) -> str:
    """Paid, delivered under the immediate rule, the payout refused with 10900."""
    ref = new_ref("att")
    cotpay_fake.refuse_payment.add(ref)
    await held_order(http, ref, payoutRule="immediate")
    await post(http, f"/v1/orders/{ref}/delivered")
    view = await until_status(http, ref, "NEEDS_ATTENTION")
    assert view["attention"]["code"] == 10900
    return ref


async def test_operator_retry_answers_the_payout_underway(
    http: httpx.AsyncClient, cotpay_fake: GatewayCotpay, gated: list[str]
) -> None:
    ref = await _needs_attention_at_payment(http, cotpay_fake)
    cotpay_fake.refuse_payment.discard(ref)
    gate(cotpay_fake, gated, ref)
    answer = await post(http, f"/v1/orders/{ref}/operator", {"action": "retry", "note": "linked"})
    same_fields(answer, await read(http, ref))
    assert answer["status"] == "PAYING_OUT"
    assert answer["waitingFor"].startswith("Paying out to the seller since ")
    assert answer["attention"] is None
    cotpay_fake.gates[ref].set()
    await until_status(http, ref, "PAID_OUT")


async def test_operator_refund_answers_the_return_request_underway(
    http: httpx.AsyncClient, cotpay_fake: GatewayCotpay, gated: list[str]
) -> None:
    ref = await _needs_attention_at_payment(http, cotpay_fake)
    gate(cotpay_fake, gated, ref)
    answer = await post(http, f"/v1/orders/{ref}/operator", {"action": "refund"})
    same_fields(answer, await read(http, ref))
    assert answer["status"] == "RETURN_REQUESTED"
    assert answer["waitingFor"].startswith("Requesting a return since ")


async def test_operator_release_answers_the_payout_slot(http: httpx.AsyncClient) -> None:
    """Missed delivery deadline under the T+1 rule: release waits for the payout slot."""
    ref = await held_order(http, timers={"deliveryDeadline": "PT1S"})
    await until_status(http, ref, "NEEDS_ATTENTION")
    answer = await post(http, f"/v1/orders/{ref}/operator", {"action": "release"})
    same_fields(answer, await read(http, ref))
    assert answer["status"] == "PAYING_OUT"
    assert answer["payoutNotBefore"] is not None
    assert answer["waitingFor"].startswith("Waiting for the payout slot since ")
    assert answer["waitingFor"].endswith(")")  # "(until <the payout instant>)"
