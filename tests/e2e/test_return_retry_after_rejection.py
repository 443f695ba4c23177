"""A return request retried after the seller rejected it (found by ``make chaos``; finding in
docs/reliability.md, fixed by the patch ``return-rejection-in-flight``).

The worker dies while Cotpay processes ``return-request`` (slow sandbox): Cotpay opens the
return, but the answer is lost. The seller rejects that return (IPN ``RETURN_REJECTED``). The
activity's retry (after its 35 s ``start_to_close``) reaches Cotpay, which sees a held order and
opens a second return request. The workflow takes the first rejection as the answer to the
second request: it asks for an operator ("the seller rejected the return") and accepts
``release`` although a return request is open at Cotpay, so Cotpay refuses the payout (10800,
"order is RETURN_PENDING") until the seller decides again.

Expected: while a return request may be open at Cotpay, ``release`` is refused (409), as
docs/http-api.md says for ``return_pending``; once the seller decides the open request, the
order goes on and pays out once. Before the patch ``return-rejection-in-flight`` this was a
strict xfail: the workflow took the first rejection as the answer to the retried request.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sandbox.testing import RunningSandbox
from starter.stack import DevServer
from workflows.models import EscrowStatus

from .driver import E2EStack
from .test_worker_crash import crash_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def _cotpay_status(stack: E2EStack, id_order: int, status: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while (await stack.sandbox_order(id_order))["status"] != status:
        assert time.monotonic() < deadline, f"Cotpay order never {status}"
        await asyncio.sleep(0.1)


async def test_release_refused_while_a_retried_return_request_is_open(
    temporal_server: DevServer, sandbox: RunningSandbox, e2e_dir: Path
) -> None:
    async with crash_stack(temporal_server, sandbox, e2e_dir / "midreturn") as stack:
        try:
            view = await stack.started("midreturn")
            ref, id_order = view["orderRef"], view["cotpayOrderId"]
            await stack.pay(id_order)
            await stack.wait_status(ref, EscrowStatus.HELD)

            slow = await stack.admin.put("/sandbox/faults", json={"latencyMs": 2000})
            assert slow.status_code == 200, slow.text
            r = await stack.http.post(f"/v1/orders/{ref}/dispute", json={"reason": "broken"})
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.7)  # return-request in flight: Cotpay is in its latency
            await stack.kill("worker")
            await stack.admin.put("/sandbox/faults", json={})
            await _cotpay_status(stack, id_order, "RETURN_PENDING", within=10)
            rejected = await stack.admin.post(
                f"/sandbox/orders/{id_order}/return", json={"decision": "reject"}
            )
            assert rejected.status_code == 200, rejected.text

            await stack.restart("worker")
            # The retried call has reached Cotpay and its answer the workflow.
            await stack.wait_for(
                ref,
                lambda v: any(e["kind"] == "return_requested" for e in v["timeline"]),
                within=90,
            )
            await _cotpay_status(stack, id_order, "RETURN_PENDING", within=5)

            released = await stack.http.post(
                f"/v1/orders/{ref}/operator", json={"action": "release", "operator": "ops"}
            )
            assert released.status_code == 409, released.text

            again = await stack.admin.post(
                f"/sandbox/orders/{id_order}/return", json={"decision": "reject"}
            )
            assert again.status_code == 200, again.text
            await stack.wait_status(ref, EscrowStatus.NEEDS_ATTENTION, within=30)
            released = await stack.http.post(
                f"/v1/orders/{ref}/operator", json={"action": "release", "operator": "ops"}
            )
            assert released.status_code == 200, released.text
            await stack.wait_status(ref, EscrowStatus.PAID_OUT, within=30)
            entry = await stack.ledger(id_order)
            assert len(entry["payouts"]) == 1 and entry["refunds"] == []
        finally:
            await stack.admin.put("/sandbox/faults", json={})
