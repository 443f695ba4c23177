"""Orders through the HTTP API: start (idempotent, conflicts, refusals), read, update."""

from __future__ import annotations

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from starter.client import EscrowClient, VisibilityUnavailable
from tests.gateway.conftest import new_ref, order_body
from tests.gateway.ipn_helpers import post_ipn
from workflows.models import EscrowStatus

pytestmark = pytest.mark.timeout(120)


async def test_start_returns_201_with_payment_data(http: httpx.AsyncClient) -> None:
    body = order_body()
    response = await http.post("/v1/orders", json=body)
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["orderRef"] == body["orderRef"]
    assert view["workflowId"] == f"escrow-{body['orderRef']}"
    assert view["status"] == "AWAITING_PAYMENT"
    assert view["payment"].startswith("https://pay.example/")
    assert view["cotpayOrderId"] is not None
    assert response.headers["location"] == f"/v1/orders/{body['orderRef']}"


async def test_same_start_again_returns_200_and_the_same_order(http: httpx.AsyncClient) -> None:
    body = order_body()
    first = await http.post("/v1/orders", json=body)
    again = await http.post("/v1/orders", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["cotpayOrderId"] == first.json()["cotpayOrderId"]
    assert again.json()["payment"] == first.json()["payment"]


async def test_conflicting_start_returns_409_and_changes_nothing(
    http: httpx.AsyncClient,
) -> None:
    body = order_body()
    assert (await http.post("/v1/orders", json=body)).status_code == 201
    response = await http.post("/v1/orders", json={**body, "amount": 200_000})
    assert response.status_code == 409
    error = response.json()
    assert error["error"] == "order_conflict"
    assert error["fields"] == ["amount"]
    current = (await http.get(f"/v1/orders/{body['orderRef']}")).json()
    assert current["amount"] == 150_000


async def test_explicit_override_that_differs_is_a_conflict(http: httpx.AsyncClient) -> None:
    body = order_body(payoutRule="immediate")
    assert (await http.post("/v1/orders", json=body)).status_code == 201
    response = await http.post("/v1/orders", json={**body, "payoutRule": "t1-1600"})
    assert response.status_code == 409
    assert response.json()["fields"] == ["payoutRule"]


async def test_cotpay_refusal_is_422_with_the_cotpay_code(
    http: httpx.AsyncClient, orders: EscrowClient
) -> None:
    body = order_body(sellerId="0001234567")
    response = await http.post("/v1/orders", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "cotpay_refused"
    assert error["cotpayCode"] == 10200
    assert error["order"]["status"] == "FAILED"
    again = await http.post("/v1/orders", json=body)
    assert again.status_code == 422
    assert again.json()["cotpayCode"] == 10200
    handle = orders.temporal.get_workflow_handle(f"escrow-{body['orderRef']}")
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    conflict = await http.post("/v1/orders", json={**body, "description": "other"})
    assert conflict.status_code == 409


async def test_get_unknown_order_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/v1/orders/{new_ref()}")
    assert response.status_code == 404
    assert response.json()["error"] == "order_not_found"


async def test_updates_in_a_wrong_state_are_409_with_the_reason(http: httpx.AsyncClient) -> None:
    ref = (await http.post("/v1/orders", json=order_body())).json()["orderRef"]
    delivered = await http.post(f"/v1/orders/{ref}/delivered")
    assert delivered.status_code == 409
    assert delivered.json()["error"] == "invalid_state"
    assert "AWAITING_PAYMENT" in delivered.json()["message"]
    dispute = await http.post(f"/v1/orders/{ref}/dispute", json={"reason": "broken"})
    assert dispute.status_code == 409
    assert dispute.json()["error"] == "not_held"
    operator = await http.post(f"/v1/orders/{ref}/operator", json={"action": "release"})
    assert operator.status_code == 409
    assert operator.json()["error"] == "invalid_state"


async def test_cancel_is_idempotent(http: httpx.AsyncClient) -> None:
    ref = (await http.post("/v1/orders", json=order_body())).json()["orderRef"]
    first = await http.post(f"/v1/orders/{ref}/cancel", json={"reason": "out of stock"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "CANCELLED"
    again = await http.post(f"/v1/orders/{ref}/cancel")
    assert again.status_code == 200
    assert again.json()["status"] == "CANCELLED"


async def test_paid_order_is_delivered_idempotently(http: httpx.AsyncClient) -> None:
    body = order_body()
    view = (await http.post("/v1/orders", json=body)).json()
    ref = view["orderRef"]
    ipn = {"idOrder": view["cotpayOrderId"], "status": "HOLDING", "amount": body["amount"]}
    assert (await post_ipn(http, ref, "verify", ipn)).status_code == 200
    held = (await http.get(f"/v1/orders/{ref}")).json()
    assert held["status"] == "HELD"
    first = await http.post(f"/v1/orders/{ref}/delivered", json={"note": "signed by buyer"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "DELIVERED"
    again = await http.post(f"/v1/orders/{ref}/delivered")
    assert again.status_code == 200
    assert again.json()["deliveredAt"] == first.json()["deliveredAt"]


async def test_unknown_order_updates_are_404(http: httpx.AsyncClient) -> None:
    for action in ("delivered", "dispute", "cancel"):
        response = await http.post(f"/v1/orders/{new_ref()}/{action}")
        assert response.status_code == 404, action
        assert response.json()["error"] == "order_not_found"


async def test_list_needs_advanced_visibility(
    http: httpx.AsyncClient, orders: EscrowClient
) -> None:
    """The visibility listing (the client's, ``ops list``) needs advanced visibility, which the
    time-skipping server lacks; the gateway's listing comes from the order store instead."""
    with pytest.raises(VisibilityUnavailable) as caught:
        await orders.list_orders(EscrowStatus.NEEDS_ATTENTION)
    assert caught.value.code == "visibility_unavailable"
    response = await http.get("/v1/orders", params={"status": "NEEDS_ATTENTION"})
    assert response.status_code == 200, response.text
    assert response.json()["nextCursor"] is None


async def test_healthz_reports_temporal_up(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "temporal": "up", "store": "up"}


async def test_openapi_lists_the_routes(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/v1/orders",
        "/v1/orders/{order_ref}",
        "/v1/orders/{order_ref}/delivered",
        "/v1/orders/{order_ref}/dispute",
        "/v1/orders/{order_ref}/cancel",
        "/v1/orders/{order_ref}/operator",
        "/ipn/{order_ref}/{step}",
        "/healthz",
    } <= paths


async def test_updates_on_a_finished_order_are_409_order_closed(http: httpx.AsyncClient) -> None:
    body = order_body(sellerId="0007654321")
    assert (await http.post("/v1/orders", json=body)).status_code == 422
    for action in ("delivered", "dispute", "cancel"):
        response = await http.post(f"/v1/orders/{body['orderRef']}/{action}")
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "order_closed"
        assert response.json()["status"] == "FAILED"
