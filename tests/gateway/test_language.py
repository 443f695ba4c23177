"""``Accept-Language: vi``: errors, ``waitingFor`` lines and timeline texts in Vietnamese.

English stays the default; codes, statuses, ids and times are the same in both languages.
"""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import new_ref, order_body

pytestmark = pytest.mark.timeout(120)

VI = {"accept-language": "vi-VN,vi;q=0.9,en;q=0.5"}


async def test_an_error_in_vietnamese(http: httpx.AsyncClient) -> None:
    ref = (await http.post("/v1/orders", json=order_body())).json()["orderRef"]
    english = await http.post(f"/v1/orders/{ref}/delivered")
    vietnamese = await http.post(f"/v1/orders/{ref}/delivered", headers=VI)
    assert english.status_code == vietnamese.status_code == 409
    assert english.json()["message"] == "cannot confirm delivery of an order in AWAITING_PAYMENT"
    assert vietnamese.json() == {
        **english.json(),
        "message": "không thể xác nhận giao hàng cho đơn đang ở trạng thái AWAITING_PAYMENT",
    }
    assert vietnamese.headers["content-language"] == "vi"
    assert "Accept-Language" in vietnamese.headers["vary"]

    missing = await http.get(f"/v1/orders/{new_ref()}", headers=VI)
    assert missing.status_code == 404
    assert missing.json()["error"] == "order_not_found"
    assert missing.json()["message"].startswith("không có đơn hàng '")


async def test_errors_of_the_middleware_too(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/orders/x", headers={**VI, "authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "message": "thiếu hoặc sai API key (Authorization: Bearer <key>)",
    }


async def test_waiting_for_and_the_timeline_in_vietnamese(http: httpx.AsyncClient) -> None:
    created = await http.post("/v1/orders", json=order_body(), headers=VI)
    assert created.status_code == 201
    view = created.json()
    assert view["status"] == "AWAITING_PAYMENT"
    assert view["waitingFor"].startswith("Chờ người mua thanh toán từ ")
    assert " (đến " in view["waitingFor"]
    english = (await http.get(f"/v1/orders/{view['orderRef']}")).json()
    assert english["waitingFor"].startswith("Waiting for buyer payment since ")
    details = {event["kind"]: event["detail"] for event in view["timeline"]}
    assert details["started"].startswith(f"Ký quỹ {view['orderRef']}: 150.000 VND, người bán ")
    assert details["order_created"] == "đã tạo đơn"
    assert details["status"] == "chờ người mua thanh toán"
    assert [e["time"] for e in view["timeline"]] == [e["time"] for e in english["timeline"]]
    assert [e["kind"] for e in view["timeline"]] == [e["kind"] for e in english["timeline"]]


async def test_a_refused_start_explains_itself_in_vietnamese(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/orders", json=order_body(sellerId="0001234567"), headers=VI)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "cotpay_refused" and error["cotpayCode"] == 10200
    assert "không tìm thấy người bán (mã 10200)" in error["message"]
    assert error["order"]["status"] == "FAILED"
    assert "không tìm thấy người bán" in error["order"]["attention"]["reason"]


async def test_english_is_the_default(http: httpx.AsyncClient) -> None:
    for header in ({}, {"accept-language": "fr-FR, de"}, {"accept-language": "en, vi"}):
        response = await http.get(f"/v1/orders/{new_ref()}", headers=header)
        assert response.json()["message"].startswith("no order '")
        assert "content-language" not in response.headers


async def test_docs_and_metrics_are_left_alone(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs", headers=VI)
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    schema = await http.get("/openapi.json", headers=VI)
    assert schema.json()["info"]["title"] == "cotpay-escrow gateway"
