"""IPN intake: signed URLs, plain and sealed bodies, forged and malformed callbacks."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import ipn_signature
from cotpay.settings import CotpaySettings
from runtime.codec import escrow_data_converter
from runtime.metrics import IPN_AFTER_CLOSE
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.stack.processes import free_port
from tests.gateway.conftest import IPN_SECRET, gateway_client, new_ref, order_body
from tests.gateway.ipn_helpers import ipn_path, post_ipn, post_sealed_ipn

pytestmark = pytest.mark.timeout(120)


async def start(http: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A new order, awaiting payment."""
    response = await http.post("/v1/orders", json=order_body(**overrides))
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    assert view["status"] == "AWAITING_PAYMENT", view
    return view


async def start_refused(http: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """A new order that Cotpay refused at once: 422 with the failed order's view."""
    response = await http.post("/v1/orders", json=order_body(**overrides))
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "cotpay_refused", body
    view: dict[str, Any] = body["order"]
    return view


def holding(view: dict[str, Any]) -> dict[str, Any]:
    return {"idOrder": view["cotpayOrderId"], "status": "HOLDING", "amount": view["amount"]}


async def timeline_kinds(http: httpx.AsyncClient, ref: str) -> list[str]:
    view = (await http.get(f"/v1/orders/{ref}")).json()
    return [event["kind"] for event in view["timeline"]]


async def test_signed_plain_ipn_reaches_the_workflow(http: httpx.AsyncClient) -> None:
    view = await start(http)
    response = await post_ipn(http, view["orderRef"], "verify", holding(view))
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "recorded": False}
    after = (await http.get(f"/v1/orders/{view['orderRef']}")).json()
    assert after["status"] == "HELD"
    assert "ipn" in [event["kind"] for event in after["timeline"]]


async def test_sealed_ipn_is_opened_with_the_merchant_key(
    http: httpx.AsyncClient, merchant_key_file: Path
) -> None:
    view = await start(http)
    response = await post_sealed_ipn(
        http, view["orderRef"], "verify", holding(view), merchant_key_file
    )
    assert response.status_code == 200, response.text
    assert (await http.get(f"/v1/orders/{view['orderRef']}")).json()["status"] == "HELD"


@pytest.mark.parametrize(
    "forge",
    [
        "missing",
        "empty",
        "other step",
        "other order",
        "other secret",
        "truncated",
    ],
)
async def test_forged_ipn_is_403_and_signals_nothing(http: httpx.AsyncClient, forge: str) -> None:
    view = await start(http)
    ref = view["orderRef"]
    before = await timeline_kinds(http, ref)
    good = ipn_signature(IPN_SECRET, ref, "verify")
    sig = {
        "missing": None,
        "empty": "",
        "other step": ipn_signature(IPN_SECRET, ref, "payment"),
        "other order": ipn_signature(IPN_SECRET, new_ref(), "verify"),
        "other secret": ipn_signature("not-the-secret", ref, "verify"),
        "truncated": good[:-2],
    }[forge]
    if sig is None:
        response = await http.post(f"/ipn/{ref}/verify", json=holding(view))
    else:
        response = await post_ipn(http, ref, "verify", holding(view), sig=sig)
    assert response.status_code == 403
    assert response.json()["error"] == "bad_signature"
    assert await timeline_kinds(http, ref) == before
    assert (await http.get(f"/v1/orders/{ref}")).json()["status"] == "AWAITING_PAYMENT"


@pytest.mark.parametrize(
    "query",
    ["sig=oZ%07W%5D%C2%83", "sig=%C3%A9%C3%A9", "sig=%E7%AD%BE", "sig=%FF%FE", "sig=%00"],
    ids=["fuzzed", "accents", "cjk", "not-utf8", "nul"],
)
async def test_garbled_non_ascii_signature_is_403_never_500(
    http: httpx.AsyncClient, query: str
) -> None:
    # Found by schemathesis (issue 13): hmac.compare_digest refused the non-ASCII str -> 500.
    view = await start(http)
    ref = view["orderRef"]
    before = await timeline_kinds(http, ref)
    for path in (f"/ipn/{ref}/verify", f"/ipn/{new_ref()}/payment", f"/ipn/{ref}/nostep"):
        response = await http.post(
            f"{path}?{query}",
            content=json.dumps(holding(view)).encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "bad_signature"
    assert await timeline_kinds(http, ref) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
        (b'{"idOrder": 1}', "application/json"),
        (b'{"status": "   "}', "application/json"),
        (b'{"status": "HOLDING", "amount": "lots"}', "application/json"),
        (b'{"x-api-message": "garbage"}', "application/json"),
        (b"\xff\xfe", "application/octet-stream"),
    ],
)
async def test_malformed_ipn_is_400_and_signals_nothing(
    http: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    view = await start(http)
    ref = view["orderRef"]
    before = await timeline_kinds(http, ref)
    response = await http.post(
        ipn_path(ref, "verify"), content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_ipn"
    assert await timeline_kinds(http, ref) == before


async def test_tampered_sealed_ipn_is_400(http: httpx.AsyncClient, merchant_key_file: Path) -> None:
    view = await start(http)
    ref = view["orderRef"]
    from cotpay.envelope import EncryptedEnvelope, load_private_key

    public = load_private_key(merchant_key_file.read_bytes()).public_key()
    sealed = EncryptedEnvelope(peer_public_key=public, own_private_key=None).seal(
        holding(view), path=f"/ipn/{ref}/verify", access_token="t", app_id="a"
    )
    headers = dict(sealed.headers)
    headers["x-api-validate"] = "0" * 32
    response = await http.post(ipn_path(ref, "verify"), content=sealed.body, headers=headers)
    assert response.status_code == 400
    assert (await http.get(f"/v1/orders/{ref}")).json()["status"] == "AWAITING_PAYMENT"


async def test_replayed_ipn_is_accepted_and_recorded_once(http: httpx.AsyncClient) -> None:
    view = await start(http)
    ref = view["orderRef"]
    body = holding(view) | {"transactionId": "tx-1"}
    for _ in range(3):
        assert (await post_ipn(http, ref, "verify", body)).status_code == 200
    kinds = await timeline_kinds(http, ref)
    assert kinds.count("ipn") == 1


async def test_unknown_status_is_recorded_not_dropped(http: httpx.AsyncClient) -> None:
    view = await start(http)
    ref = view["orderRef"]
    response = await post_ipn(http, ref, "verify", {"status": "SOMETHING_NEW"})
    assert response.status_code == 200
    assert "ipn_unknown" in await timeline_kinds(http, ref)


async def test_ipn_for_unknown_order_is_404(http: httpx.AsyncClient) -> None:
    response = await post_ipn(http, new_ref(), "verify", {"status": "HOLDING"})
    assert response.status_code == 404
    assert response.json()["error"] == "order_not_found"


async def test_signed_unknown_step_is_404(http: httpx.AsyncClient) -> None:
    view = await start(http)
    response = await post_ipn(http, view["orderRef"], "refund", {"status": "HOLDING"})
    assert response.status_code == 404


async def test_ipn_for_a_finished_order_is_recorded_and_200(http: httpx.AsyncClient) -> None:
    view = await start_refused(http, sellerId="0009999999")
    assert view["status"] == "FAILED"
    before = IPN_AFTER_CLOSE.labels(status="HOLDING")._value.get()
    with structlog.testing.capture_logs() as logs:
        response = await post_ipn(http, view["orderRef"], "verify", {"status": "HOLDING"})
    assert response.status_code == 200
    assert response.json() == {"ok": True, "recorded": True}
    assert IPN_AFTER_CLOSE.labels(status="HOLDING")._value.get() == before + 1
    stranded = [line for line in logs if line["event"] == "ipn.after_close.money_held"]
    assert stranded and stranded[0]["log_level"] == "error"


async def test_oversized_ipn_is_413(http: httpx.AsyncClient) -> None:
    view = await start(http)
    body = holding(view) | {"message": "m" * 8000}
    response = await post_ipn(http, view["orderRef"], "verify", body)
    assert response.status_code == 413


async def test_temporal_down_gives_503_so_cotpay_retries(
    escrow_settings: EscrowSettings, merchant_key_file: Path, temporal_test_server_bin: Path
) -> None:
    gone = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server_bin),
        data_converter=escrow_data_converter(),
    )
    await gone.shutdown()
    never = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=escrow_data_converter()
    )
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    for client in (gone.client, never):
        orders = EscrowClient(client, rpc_timeout=timedelta(seconds=1))
        async with gateway_client(client, escrow_settings, cotpay, orders) as http:
            response = await post_ipn(http, new_ref(), "verify", {"status": "HOLDING"})
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporal_unavailable"
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert health.json()["error"] == "temporal_unavailable"
