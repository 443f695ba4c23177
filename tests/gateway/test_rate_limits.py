"""Rate limits under a loopback burst (docs/security.md): per key, per source address, and the
IPN intake apart, so neither API clients nor forgers starve Cotpay's callbacks.

The gateway runs on a real loopback socket with small limits; sources other than 127.0.0.1 are
given with ``X-Forwarded-For``, which uvicorn honours from loopback peers only (its
``FORWARDED_ALLOW_IPS``). Every burst is bounded in count and each request in time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cotpay.ipn import ipn_signature
from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.gateway.ratelimit import RateLimitSettings
from starter.gateway.server import running_gateway
from tests.gateway.conftest import IPN_SECRET, Backend, new_ref

pytestmark = pytest.mark.timeout(120)

KEYS = [f"burst-key-{n}-0123456789abcdef" for n in range(3)]
LIMITS = RateLimitSettings(
    source="30/minute", key="10/minute", ipn="1000/minute", ipn_forged="5/minute"
)


@pytest.fixture
async def gateway(
    backend: Backend, escrow_settings: EscrowSettings, merchant_key_file: Path
) -> AsyncIterator[httpx.AsyncClient]:
    escrow = escrow_settings.model_copy(update={"api_keys": ",".join(f"{k}:viewer" for k in KEYS)})
    async with (
        running_gateway(
            backend.client,
            escrow,
            CotpaySettings(private_key_file=merchant_key_file),
            task_queue=backend.task_queue,
            search_salt=None,
            rate_limits=LIMITS,
        ) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield http


def as_from(source: str, key: str | None = None) -> dict[str, str]:
    headers = {"x-forwarded-for": source}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return headers


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "rate_limited"
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 60
    return seconds


async def test_per_key_limit_leaves_other_keys_alone(gateway: httpx.AsyncClient) -> None:
    statuses = [
        (await gateway.get(f"/v1/orders/{new_ref()}", headers=as_from("10.1.0.1", KEYS[0])))
        for _ in range(13)
    ]
    assert [r.status_code for r in statuses[:10]] == [404] * 10
    for refused in statuses[10:]:
        retry_after(refused)
    other = await gateway.get(f"/v1/orders/{new_ref()}", headers=as_from("10.1.0.1", KEYS[1]))
    assert other.status_code == 404


async def test_per_source_limit_comes_before_the_key(gateway: httpx.AsyncClient) -> None:
    answers = [
        (await gateway.post("/v1/orders", headers=as_from("10.2.0.2"), json={})).status_code
        for _ in range(33)
    ]
    assert answers[:30] == [401] * 30
    assert answers[30:] == [429] * 3
    refused = await gateway.get(f"/v1/orders/{new_ref()}", headers=as_from("10.2.0.2", KEYS[2]))
    retry_after(refused)
    elsewhere = await gateway.get(f"/v1/orders/{new_ref()}", headers=as_from("10.2.0.3", KEYS[2]))
    assert elsewhere.status_code == 404
    assert (await gateway.get("/healthz", headers=as_from("10.2.0.2"))).status_code == 200


async def test_forged_ipns_are_throttled_without_starving_cotpay(
    gateway: httpx.AsyncClient,
) -> None:
    ref = new_ref("ipn")
    forged = [
        await gateway.post(f"/ipn/{ref}/payment?sig=forged", headers=as_from("10.3.0.66"), json={})
        for _ in range(8)
    ]
    assert [r.status_code for r in forged[:5]] == [403] * 5
    for refused in forged[5:]:
        retry_after(refused)
    sig = ipn_signature(IPN_SECRET, ref, "payment")
    # The forger's address stays throttled even with a good signature...
    retry_after(
        await gateway.post(f"/ipn/{ref}/payment?sig={sig}", headers=as_from("10.3.0.66"), json={})
    )
    # ...while Cotpay, elsewhere, goes through (404: no such order in this test).
    real = await gateway.post(
        f"/ipn/{ref}/payment?sig={sig}",
        headers=as_from("10.3.0.7"),
        json={"status": "HOLDING"},
    )
    assert real.status_code == 404, real.text


async def test_an_api_flood_does_not_starve_the_ipn_intake(gateway: httpx.AsyncClient) -> None:
    for _ in range(30):
        await gateway.get("/v1/orders", headers=as_from("10.4.0.4"))
    retry_after(await gateway.get("/v1/orders", headers=as_from("10.4.0.4")))
    ref = new_ref("ipn")
    sig = ipn_signature(IPN_SECRET, ref, "payment")
    ipn = await gateway.post(
        f"/ipn/{ref}/payment?sig={sig}", headers=as_from("10.4.0.4"), json={"status": "HOLDING"}
    )
    assert ipn.status_code == 404, ipn.text


def test_limits_are_configurable_and_checked() -> None:
    assert RateLimitSettings().key == "1200/minute"
    assert RateLimitSettings(key="off").key == "off"
    with pytest.raises(ValueError):
        RateLimitSettings(source="lots")
