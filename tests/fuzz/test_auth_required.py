"""Authentication is never ignored: every ``/v1`` operation of the OpenAPI document refuses a
request without a valid key with ``401``, and documents it.

Table-driven from the document the gateway serves, so an operation added later is covered
without editing this test. ``ignored_auth`` in the fuzz run checks the same for the requests
the gateway accepted; this test checks every operation whatever its data (docs/http-api.md).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

WRONG = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer not-a-key",
    "Basic Z3cta2V5LW9sZDo=",
    "bearer gw-key-old-but-longer",
    "Bearer gw-key-old\u00e9",
]


async def _operations(http: httpx.AsyncClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = (await http.get("/openapi.json")).json()
    found = [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]
    assert len(found) >= 10, "the /v1 operations of the document"
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "fuzz-auth-1", path)


def _headers(authorization: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode("utf-8")))
    return headers


async def test_every_v1_operation_refuses_a_missing_or_wrong_key(
    gateway_http: httpx.AsyncClient, api_auth: dict[str, str]
) -> None:
    for method, path, operation in await _operations(gateway_http):
        assert operation.get("security"), f"{method} {path} declares no security"
        assert "401" in operation["responses"], f"{method} {path} does not document 401"
        url = _concrete(path)
        for authorization in WRONG:
            response = await gateway_http.request(
                method, url, headers=_headers(authorization), content=b"{}"
            )
            assert response.status_code == 401, (method, path, authorization, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        accepted = await gateway_http.request(method, url, headers=api_auth, json={})
        assert accepted.status_code != 401, (method, path, accepted.text)


async def test_the_key_is_checked_before_the_path_or_the_method(
    gateway_http: httpx.AsyncClient,
) -> None:
    """Without a key nothing under /v1 says whether a route, an order or a method exists."""
    for method, url in [
        ("GET", "/v1/no-such-route"),
        ("DELETE", "/v1/orders"),
        ("GET", "/v1/orders/not%20a%20ref"),
        ("GET", "/v1"),
    ]:
        response = await gateway_http.request(method, url)
        assert response.status_code == 401, (method, url, response.text)
