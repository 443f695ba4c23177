"""What the gateway's public port serves (docs/security.md): no API document unless
``ESCROW_DOCS=true``, never the metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from tests.gateway.conftest import Backend, gateway_client

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("docs", [False, True])
async def test_docs_only_when_enabled_and_metrics_never(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    docs: bool,
) -> None:
    escrow = escrow_settings.model_copy(update={"docs": docs})
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    async with gateway_client(backend.client, escrow, cotpay, orders) as http:
        for path in ("/openapi.json", "/docs", "/docs/static/swagger-ui-bundle.js"):
            assert (await http.get(path)).status_code == (200 if docs else 404), path
        # ReDoc would load from a CDN: never served (tests/gateway/test_docs.py).
        assert (await http.get("/redoc")).status_code == 404
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


def test_docs_are_off_by_default() -> None:
    assert EscrowSettings().docs is False


def test_escrow_api_docs_is_another_name_for_escrow_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCROW_API_DOCS", "true")
    assert EscrowSettings().docs is True
    monkeypatch.setenv("ESCROW_DOCS", "false")  # the documented name wins
    assert EscrowSettings().docs is False
