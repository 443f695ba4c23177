"""Bad input: each gets a clear 4xx JSON error and starts nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from starter.client import EscrowClient
from tests.gateway.conftest import API_KEYS, MAX_BODY, new_ref, order_body

pytestmark = pytest.mark.timeout(120)


async def assert_not_started(orders: EscrowClient, ref: str) -> None:
    with pytest.raises(RPCError) as raised:
        await orders.temporal.get_workflow_handle(f"escrow-{ref}").describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


BAD_BODIES: dict[str, dict[str, Any]] = {
    "unknown field": {"discount": 10},
    "unknown nested field": {"buyer": {"name": "An", "email": "an@example.vn", "phone": "1"}},
    "amount as string": {"amount": "150000"},
    "amount under minimum": {"amount": 29_999},
    "amount not integer": {"amount": 30_000.5},
    "amount float integral": {"amount": 30_000.0},
    "amount boolean": {"amount": True},
    "amount huge": {"amount": 10**16},
    "seller id too long": {"sellerId": "09110000011"},
    "seller id empty": {"sellerId": ""},
    "buyer id wrong type": {"buyerId": 922000002},
    "description too long": {"description": "x" * 256},
    "pay method unknown": {"payMethod": "CASH"},
    "payout rule unknown": {"payoutRule": "t0"},
    "buyer email invalid": {"buyer": {"name": "An", "email": "not-an-email"}},
    "timer negative": {"timers": {"paymentWindow": "-PT1H"}},
    "timer zero window": {"timers": {"paymentWindow": 0}},
    "timer unknown": {"timers": {"coolingOff": "PT1H"}},
    "auto release not boolean": {"autoRelease": "yes"},
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_order_bodies_are_422_and_start_nothing(
    http: httpx.AsyncClient, orders: EscrowClient, case: str
) -> None:
    body = order_body(**BAD_BODIES[case])
    response = await http.post("/v1/orders", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_request"
    assert error["fields"], error
    assert all(set(f) == {"field", "problem", "type"} for f in error["fields"])
    await assert_not_started(orders, body["orderRef"])


@pytest.mark.parametrize("missing", ["orderRef", "sellerId", "buyerId", "amount"])
async def test_missing_required_fields_are_422(
    http: httpx.AsyncClient, orders: EscrowClient, missing: str
) -> None:
    body = order_body()
    del body[missing]
    response = await http.post("/v1/orders", json=body)
    assert response.status_code == 422
    assert any(missing in f["field"] for f in response.json()["fields"])


@pytest.mark.parametrize("ref", ["x" * 65, "has space", "slash/in", "dot.ted", "", "é-unicode"])
async def test_bad_order_refs_are_422(http: httpx.AsyncClient, ref: str) -> None:
    response = await http.post("/v1/orders", json=order_body(ref=ref or None) | {"orderRef": ref})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_order_ref_of_64_chars_is_accepted(http: httpx.AsyncClient) -> None:
    ref = (new_ref() + "x" * 64)[:64]
    response = await http.post("/v1/orders", json=order_body(ref=ref))
    assert response.status_code == 201, response.text
    assert response.json()["orderRef"] == ref


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b"orderRef=a&amount=1", "application/x-www-form-urlencoded"),
    ],
)
async def test_unparseable_bodies_are_422(
    http: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await http.post(
        "/v1/orders", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-key", f"Basic {API_KEYS[0]}", f"Bearer {API_KEYS[0]}x"],
)
async def test_missing_or_wrong_api_key_is_401_and_starts_nothing(
    http: httpx.AsyncClient, orders: EscrowClient, authorization: str | None
) -> None:
    body = order_body()
    headers = {} if authorization is None else {"authorization": authorization}
    request = http.build_request("POST", "/v1/orders", json=body, headers=headers)
    if authorization is None:
        del request.headers["authorization"]
    response = await http.send(request)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    await assert_not_started(orders, body["orderRef"])


async def test_every_configured_key_works(http: httpx.AsyncClient) -> None:
    for key in API_KEYS:
        response = await http.get(
            f"/v1/orders/{new_ref()}", headers={"authorization": f"Bearer {key}"}
        )
        assert response.status_code == 404


async def test_api_key_is_checked_before_the_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/orders", content=b"{broken", headers={"authorization": "Bearer nope"}
    )
    assert response.status_code == 401


async def test_huge_body_with_length_is_413(http: httpx.AsyncClient, orders: EscrowClient) -> None:
    body = order_body(description="d" * 200)
    content = json.dumps(body).encode() + b" " * (MAX_BODY + 1)
    response = await http.post(
        "/v1/orders", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    await assert_not_started(orders, body["orderRef"])


async def test_huge_streamed_body_is_413(http: httpx.AsyncClient, orders: EscrowClient) -> None:
    body = order_body()

    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(body).encode()[:-1]
        for _ in range(10):
            yield b" " * 1024
        yield b"}"

    response = await http.post(
        "/v1/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    await assert_not_started(orders, body["orderRef"])


async def test_bad_path_order_ref_is_422(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/orders/" + "x" * 65)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_unknown_route_and_method_are_json(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = await http.delete(f"/v1/orders/{new_ref()}")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    "body", [{"action": "explode"}, {"action": "retry", "extra": 1}, {"note": "x"}]
)
async def test_bad_operator_bodies_are_422(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await http.post(f"/v1/orders/{new_ref()}/operator", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_bad_update_bodies_are_422(http: httpx.AsyncClient) -> None:
    response = await http.post(f"/v1/orders/{new_ref()}/dispute", json={"reason": "x" * 501})
    assert response.status_code == 422
    response = await http.post(f"/v1/orders/{new_ref()}/delivered", json={"when": "now"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    "params",
    [{"status": "SHIPPED"}, {"sellerId": 'x" OR "1"="1'}, {"buyerId": ""}, {"limit": 0}],
)
async def test_bad_list_parameters_are_422(http: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await http.get("/v1/orders", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
