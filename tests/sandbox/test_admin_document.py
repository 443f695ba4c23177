"""The admin API answers what its OpenAPI document says (found by the fuzz tests, tests/fuzz).

Errors are documented with their schema, ``405`` names every method of the path, and bodies take
JSON values as JSON Schema means them: ``true`` is not a number, ``"5"`` not an integer, ``0`` not
a time (docs/sandbox.md).
"""

from __future__ import annotations

from typing import Any

import jsonschema

from sandbox.testing import RunningSandbox
from tests.sandbox.helpers import make_users


async def _spec(sandbox: RunningSandbox) -> dict[str, Any]:
    document: dict[str, Any] = (await sandbox.admin.get("/openapi.json")).json()
    return document


def _conforms(spec: dict[str, Any], method: str, route: str, status: int, body: Any) -> None:
    documented = spec["paths"][route][method]["responses"]
    assert str(status) in documented, (method, route, status)
    schema = documented[str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": spec["components"]}).validate(body)


async def test_admin_errors_are_documented(sandbox: RunningSandbox) -> None:
    spec = await _spec(sandbox)
    missing = await sandbox.admin.get("/sandbox/users/nobody")
    assert missing.status_code == 404
    _conforms(spec, "get", "/sandbox/users/{user_id}", 404, missing.json())
    page = await sandbox.admin.get("/sandbox/pay/123456")
    assert page.status_code == 404 and page.headers["content-type"] == "application/json"
    _conforms(spec, "get", "/sandbox/pay/{idOrder}", 404, page.json())
    invalid = await sandbox.admin.put("/sandbox/clock", json={})
    assert invalid.status_code == 422
    _conforms(spec, "put", "/sandbox/clock", 422, invalid.json())
    created = await sandbox.admin.put("/sandbox/users/newuser1", json={"name": "N"})
    assert created.status_code == 201
    assert "201" in spec["paths"]["/sandbox/users/{user_id}"]["put"]["responses"]


async def test_405_allows_every_method_of_the_path(sandbox: RunningSandbox) -> None:
    response = await sandbox.admin.delete("/sandbox/users/someone")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT, PATCH"
    clock = await sandbox.admin.post("/sandbox/clock", json={})
    assert clock.status_code == 405 and clock.headers["allow"] == "GET, PUT"


async def test_json_values_are_what_the_document_says(sandbox: RunningSandbox) -> None:
    await make_users(sandbox)
    for faults in (
        {"payoutFailRate": False},
        {"errorRate": "0.5"},
        {"latencyMs": True},
        {"latencyMs": "5"},
        {"latencyMs": 5.5},
    ):
        response = await sandbox.admin.put("/sandbox/faults", json=faults)
        assert response.status_code == 422, (faults, response.text)
    integral = await sandbox.admin.put("/sandbox/faults", json={"latencyMs": 65.0, "errorRate": 0})
    assert integral.status_code == 200, integral.text
    assert integral.json()["latencyMs"] == 65
    assert (await sandbox.admin.put("/sandbox/faults", json={})).status_code == 200
    for clock in ({"now": 0}, {"now": True}, {"offsetSeconds": "60"}, {"offsetSeconds": True}):
        response = await sandbox.admin.put("/sandbox/clock", json=clock)
        assert response.status_code == 422, (clock, response.text)
    moved = await sandbox.admin.put("/sandbox/clock", json={"offsetSeconds": 60, "now": None})
    assert moved.status_code == 200 and moved.json()["offsetSeconds"] == 60
    fail = await sandbox.admin.post("/sandbox/orders/1/fail-next-payout", json={"count": True})
    assert fail.status_code == 422
