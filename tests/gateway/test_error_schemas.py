"""Error answers match the schemas the OpenAPI document gives for their route and status.

Found by schemathesis (issue 13): the ``409`` answers carried ``status`` and a ``fields`` list of
names, which the documented ``ErrorBody`` forbade. A ``409`` is now documented as
``ConflictBody`` (docs/http-api.md); these tests check each kind of error answer against the
document, so the answers and the document cannot drift apart again.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest

from tests.gateway.conftest import new_ref, order_body
from tests.gateway.ipn_helpers import post_ipn

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def spec(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def conforms(
    spec: dict[str, Any], method: str, route: str, response: httpx.Response
) -> dict[str, Any]:
    """The answer's JSON, after checking it against the schema documented for its status."""
    documented = spec["paths"][route][method]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {route}: {status} is not documented"
    schema = documented[status]["content"]["application/json"]["schema"]
    body: dict[str, Any] = response.json()
    jsonschema.Draft202012Validator({**schema, "components": spec["components"]}).validate(body)
    return body


async def _held(http: httpx.AsyncClient) -> str:
    body = order_body()
    view = (await http.post("/v1/orders", json=body)).json()
    ipn = {"idOrder": view["cotpayOrderId"], "status": "HOLDING", "amount": body["amount"]}
    assert (await post_ipn(http, view["orderRef"], "verify", ipn)).status_code == 200
    return str(view["orderRef"])


def test_every_409_is_documented_as_a_conflict_body(spec: dict[str, Any]) -> None:
    seen = 0
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            answer = operation["responses"].get("409")
            if answer is None:
                continue
            seen += 1
            schema = answer["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ConflictBody"), (method, route)
    assert seen >= 5
    conflict = spec["components"]["schemas"]["ConflictBody"]
    assert {"error", "message", "fields", "status"} <= set(conflict["properties"])


async def test_order_conflict_conforms_and_names_the_fields(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    body = order_body()
    assert (await http.post("/v1/orders", json=body)).status_code == 201
    response = await http.post("/v1/orders", json={**body, "amount": 200_000, "payMethod": "PAYME"})
    assert response.status_code == 409
    error = conforms(spec, "post", "/v1/orders", response)
    assert error["error"] == "order_conflict"
    assert sorted(error["fields"]) == ["amount", "payMethod"]


async def test_wrong_state_refusals_conform(http: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    ref = (await http.post("/v1/orders", json=order_body())).json()["orderRef"]
    cases = [
        ("delivered", None, "invalid_state"),
        ("dispute", {"reason": "broken"}, "not_held"),
        ("operator", {"action": "release"}, "invalid_state"),
    ]
    for action, payload, code in cases:
        response = await http.post(f"/v1/orders/{ref}/{action}", json=payload)
        assert response.status_code == 409, (action, response.text)
        error = conforms(spec, "post", f"/v1/orders/{{order_ref}}/{action}", response)
        assert error["error"] == code, action
    held = await _held(http)
    response = await http.post(f"/v1/orders/{held}/cancel")
    assert response.status_code == 409, response.text
    error = conforms(spec, "post", "/v1/orders/{order_ref}/cancel", response)
    assert error["error"] in {"invalid_state", "money_held"}


async def test_order_closed_conforms_and_gives_the_final_status(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    body = order_body(sellerId="0007654321")
    refused = await http.post("/v1/orders", json=body)
    assert refused.status_code == 422
    error = conforms(spec, "post", "/v1/orders", refused)
    assert error["error"] == "cotpay_refused" and error["order"]["status"] == "FAILED"
    payloads: dict[str, Any] = {
        "delivered": None,
        "dispute": None,
        "cancel": None,
        "operator": {"action": "retry"},
    }
    for action, payload in payloads.items():
        response = await http.post(f"/v1/orders/{body['orderRef']}/{action}", json=payload)
        assert response.status_code == 409, (action, response.text)
        error = conforms(spec, "post", f"/v1/orders/{{order_ref}}/{action}", response)
        assert error["error"] == "order_closed", action
        assert error["status"] == "FAILED", action


async def test_other_errors_conform(http: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    invalid = await http.post("/v1/orders", json={**order_body(), "amount": "lots", "x": 1})
    assert invalid.status_code == 422
    error = conforms(spec, "post", "/v1/orders", invalid)
    assert error["error"] == "invalid_request" and len(error["fields"]) == 2
    query = await http.get("/v1/orders", params={"createdFrom": "soon"})
    assert query.status_code == 422
    assert conforms(spec, "get", "/v1/orders", query)["error"] == "invalid_date"
    missing = await http.get(f"/v1/orders/{new_ref()}")
    assert missing.status_code == 404
    assert conforms(spec, "get", "/v1/orders/{order_ref}", missing)["error"] == "order_not_found"
    anonymous = await http.get("/v1/orders", headers={"authorization": ""})
    assert anonymous.status_code == 401
    assert conforms(spec, "get", "/v1/orders", anonymous)["error"] == "unauthorized"


# --- what the first fuzz runs found (docs/reliability-fuzzing.md) -----------------------------


async def test_405_allows_every_method_of_the_path(http: httpx.AsyncClient) -> None:
    for method, path, allowed in [
        ("OPTIONS", "/v1/orders", "GET, POST"),
        ("DELETE", "/v1/orders", "GET, POST"),
        ("PUT", "/v1/orders/some-ref", "GET"),
        ("GET", "/v1/orders/some-ref/delivered", "POST"),
        ("TRACE", "/healthz", "GET"),
    ]:
        response = await http.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allowed, (method, path)
        assert response.json()["error"] == "method_not_allowed"


async def test_unknown_query_parameters_are_refused(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    typo = await http.get("/v1/orders", params={"stauts": "HELD"})
    assert typo.status_code == 422, typo.text
    error = conforms(spec, "get", "/v1/orders", typo)
    assert error["error"] == "invalid_request"
    assert error["fields"] == [
        {"field": "query.stauts", "problem": "unknown query parameter", "type": "extra_forbidden"}
    ]
    for path in ("/v1/reports/money", f"/v1/orders/{new_ref()}", "/v1/exports/orders.csv"):
        response = await http.get(path, params={"_": "1"})
        assert response.status_code == 422, path
        assert response.json()["fields"][0]["field"] == "query._", path
    known = await http.get("/v1/orders", params={"status": "HELD", "limit": "5"})
    assert known.status_code == 200, known.text
    # The health probe and Cotpay's IPN URLs are not held to it.
    assert (await http.get("/healthz", params={"probe": "lb"})).status_code == 200


async def test_a_duration_is_a_string_or_a_number_never_a_boolean(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    for flag in (True, False):
        body = order_body(timers={"inspectionPeriod": flag})
        response = await http.post("/v1/orders", json=body)
        assert response.status_code == 422, (flag, response.text)
        error = conforms(spec, "post", "/v1/orders", response)
        assert error["fields"][0]["field"] == "body.timers.inspectionPeriod"
    seconds = await http.post("/v1/orders", json=order_body(timers={"paymentWindow": 3600}))
    assert seconds.status_code == 201, seconds.text
    # Bounds hold for the number as sent, not as rounded to microseconds (a long fuzz run).
    for timers in ({"deliveryDeadline": 31536000.000000004}, {"paymentWindow": 6e-7}):
        over = await http.post("/v1/orders", json=order_body(timers=timers))
        assert over.status_code == 422, (timers, over.text)
    year = await http.post("/v1/orders", json=order_body(timers={"deliveryDeadline": 31536000}))
    assert year.status_code == 201, year.text
    timers = spec["components"]["schemas"]["TimerOverrides"]["properties"]["paymentWindow"]
    kinds = [branch.get("type") for branch in timers["anyOf"]]
    assert kinds == ["string", "number", "null"], timers


async def test_a_body_that_is_not_utf8_is_a_documented_400(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    ref = (await http.post("/v1/orders", json=order_body())).json()["orderRef"]
    response = await http.post(
        f"/v1/orders/{ref}/operator",
        content=b"J\x06[[0f\xff\xfeM",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert conforms(spec, "post", "/v1/orders/{order_ref}/operator", response)["error"] == (
        "bad_request"
    )


async def test_an_email_with_white_space_of_any_dialect_is_refused(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    """``\\s`` differs between JSON Schema's regexes and the gateway's: the document's pattern
    names the differences, so both refuse the same addresses."""
    pattern = spec["components"]["schemas"]["BuyerBody"]["properties"]["email"]["pattern"]
    for space in ("\x85", "\ufeff", "\x1c", "\u2028", "\xa0", " ", "\t"):
        email = f"a{space}b@example.vn"
        assert re.search(pattern, email) is None, repr(space)
        body = order_body(buyer={"name": "Lan", "email": email})
        response = await http.post("/v1/orders", json=body)
        assert response.status_code == 422, (repr(space), response.text)
        assert conforms(spec, "post", "/v1/orders", response)["fields"][0]["field"] == (
            "body.buyer.email"
        )
    fine = order_body(buyer={"name": "Lan", "email": "lan@ví-dụ.vn"})
    assert re.search(pattern, fine["buyer"]["email"])
    assert (await http.post("/v1/orders", json=fine)).status_code == 201
