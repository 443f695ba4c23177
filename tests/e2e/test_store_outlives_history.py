"""An order whose Temporal history was deleted (as the namespace retention does) is still served
from the order store, with its timeline, and its orderRef is not started a second time.

Real dev server, sandbox, worker and gateway. The store row is written here from the order's own
view with ``OrderStore.record`` (the write the workflow's store activity makes; idempotent, so
the test holds whether or not the workflow has written it already).

The order is cancelled, then deleted while it still watches for a late payment (the grace
period): the dev server deletes a running workflow at once, a closed one only after about 35 s.
What the gateway sees is the same either way: Temporal answers NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

from store.models import OrderWrite
from workflows.models import EscrowStatus, OrderView, workflow_id_for

from .driver import WAIT_S, E2EStack

pytestmark = pytest.mark.e2e


async def _cancelled_order(stack: E2EStack, prefix: str) -> tuple[dict[str, Any], OrderView]:
    body = await stack.order_body(prefix, description="Áo dài lụa, giao trước Tết")
    started = await stack.start(body)
    assert started.status_code == 201, started.text
    ref = body["orderRef"]
    cancelled = await stack.http.post(f"/v1/orders/{ref}/cancel", json={"reason": "hết hàng"})
    assert cancelled.status_code == 200, cancelled.text
    view = OrderView.model_validate(await stack.view(ref))
    assert view.status == EscrowStatus.CANCELLED
    return body, view


async def _delete_history(stack: E2EStack, ref: str) -> None:
    """``temporal workflow delete``, through the client API; deletion is asynchronous."""
    await stack.temporal.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=stack.temporal.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id_for(ref)),
        )
    )
    deadline = time.monotonic() + WAIT_S
    while await stack.escrow.exists(ref):
        assert time.monotonic() < deadline, "Temporal did not delete the history"
        await asyncio.sleep(0.2)


async def test_order_with_deleted_history_is_served_from_the_store(stack: E2EStack) -> None:
    body, view = await _cancelled_order(stack, "kept")
    ref = str(body["orderRef"])
    await stack.store.record(OrderWrite.from_view(view, created_at=view.timeline[0].time))

    await _delete_history(stack, ref)

    response = await stack.http.get(f"/v1/orders/{ref}")
    assert response.status_code == 200, response.text
    assert response.headers["x-escrow-source"] == "store"
    kept = OrderView.model_validate(response.json())
    assert kept == view, "the same view, timeline included, after Temporal forgot the order"
    assert kept.description == "Áo dài lụa, giao trước Tết"

    events = await stack.http.get(f"/v1/orders/{ref}/events")
    assert events.status_code == 200, events.text
    assert events.json()["source"] == "store"
    assert [e["kind"] for e in events.json()["events"]] == [e.kind for e in view.timeline]

    listed = await stack.http.get(
        "/v1/orders", params={"sellerId": body["sellerId"], "status": "CANCELLED"}
    )
    assert [row["orderRef"] for row in listed.json()["orders"]] == [ref]

    again = await stack.start(body)
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "order_ref_used"
    assert not await stack.escrow.exists(ref), "the orderRef was not started a second time"
