"""``/docs`` works offline: the page and every asset it references come from the gateway."""

from __future__ import annotations

import re

import httpx
import pytest

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from tests.gateway.conftest import Backend, gateway_client

pytestmark = pytest.mark.timeout(60)

REFERENCE = re.compile(r"""(?:src|href)="([^"]+)"|url: '([^']+)'""")


async def test_docs_page_and_its_assets_come_from_the_gateway(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "//" not in html.replace("<!--", ""), "an absolute URL (CDN) in the page"
    refs = [a or b for a, b in REFERENCE.findall(html)]
    assert {"/openapi.json", "/docs/static/swagger-ui-bundle.js"} <= set(refs)
    assert any(ref.endswith(".css") for ref in refs)
    for ref in refs:
        assert ref.startswith("/"), ref
        asset = await http.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content, ref
    bundle = await http.get("/docs/static/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert "isOAS31" in bundle.text, "Swagger UI 5: it reads FastAPI's OpenAPI 3.1"
    assert (await http.get("/openapi.json")).json()["openapi"].startswith("3.1")
    assert (await http.get("/docs/oauth2-redirect")).status_code == 200
    assert (await http.get("/redoc")).status_code == 404


async def test_docs_can_be_turned_off(
    backend: Backend, escrow_settings: EscrowSettings, orders: EscrowClient
) -> None:
    settings = escrow_settings.model_copy(update={"api_docs": False})
    async with gateway_client(backend.client, settings, CotpaySettings(), orders) as off:
        assert (await off.get("/docs")).status_code == 404
        assert (await off.get("/docs/static/swagger-ui-bundle.js")).status_code == 404
        assert (await off.get("/openapi.json")).status_code == 200
