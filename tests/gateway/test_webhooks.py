"""``/v1/webhook-endpoints`` over the gateway app: create (secret shown once), list, read,
patch, delete, rotate, deliveries and resend; bad input gets 422 with stable codes; the OpenAPI
document lists every event type in its ``webhooks`` section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.gateway.app import create_app
from store import migrate
from store.api import OrderStore
from store.models import StoreEvent
from tests.gateway.conftest import API_KEYS, Backend
from tests.store.factories import write
from webhooks.dispatcher import Dispatcher
from webhooks.events import EventType, event_id
from webhooks.secrets import SecretBox
from webhooks.service import WebhookService
from webhooks.settings import WebhookSettings
from workflows.models import EscrowStatus


@pytest.fixture
async def hooks_db(tmp_path: Path) -> AsyncIterator[OrderStore]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw-hooks.db'}"
    await migrate.upgrade(url)
    store = OrderStore.open(url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def api(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    hooks_db: OrderStore,
) -> AsyncIterator[httpx.AsyncClient]:
    service = WebhookService(hooks_db.db, WebhookSettings(env="development", max_endpoints=3))
    app = create_app(
        backend.client,
        escrow_settings,
        CotpaySettings(private_key_file=merchant_key_file),
        orders=orders,
        webhooks=service,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {API_KEYS[0]}"},
        timeout=30.0,
    ) as client:
        yield client


async def test_endpoint_lifecycle(api: httpx.AsyncClient) -> None:
    made = await api.post(
        "/v1/webhook-endpoints",
        json={
            "url": "http://127.0.0.1:9/hooks",
            "eventTypes": ["order.held", "order.paid_out"],
            "description": "shop backend",
        },
    )
    assert made.status_code == 201, made.text
    body = made.json()
    endpoint_id = body["id"]
    assert body["secret"].startswith("whsec_")
    assert body["eventTypes"] == ["order.held", "order.paid_out"]
    assert body["enabled"] is True and body["disabledReason"] is None

    listed = (await api.get("/v1/webhook-endpoints")).json()["endpoints"]
    assert [e["id"] for e in listed] == [endpoint_id]
    assert "secret" not in listed[0]
    one = (await api.get(f"/v1/webhook-endpoints/{endpoint_id}")).json()
    assert "secret" not in one and one["description"] == "shop backend"

    patched = await api.patch(
        f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": False, "eventTypes": ["*"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert patched.json()["disabledReason"] == "manual"
    assert patched.json()["eventTypes"] == ["*"]
    enabled = await api.patch(f"/v1/webhook-endpoints/{endpoint_id}", json={"enabled": True})
    assert enabled.json()["enabled"] is True and enabled.json()["disabledReason"] is None

    rotated = await api.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret")
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != body["secret"]
    expires = datetime.fromisoformat(rotated.json()["previousSecretExpiresAt"])
    assert 23.9 * 3600 < (expires - datetime.now(UTC)).total_seconds() <= 24 * 3600
    now_only = await api.post(
        f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", json={"overlapHours": 0}
    )
    assert now_only.json()["previousSecretExpiresAt"] is None

    deliveries = await api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")
    assert deliveries.json() == {"deliveries": [], "nextBefore": None}

    assert (await api.delete(f"/v1/webhook-endpoints/{endpoint_id}")).status_code == 204
    gone = await api.get(f"/v1/webhook-endpoints/{endpoint_id}")
    assert gone.status_code == 404 and gone.json()["error"] == "endpoint_not_found"
    again = await api.delete(f"/v1/webhook-endpoints/{endpoint_id}")
    assert again.status_code == 404


async def test_deliveries_and_resend(api: httpx.AsyncClient, hooks_db: OrderStore) -> None:
    made = (await api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/x"})).json()
    now = datetime.now(UTC)
    await hooks_db.record(
        write(
            "gw-hook-1",
            EscrowStatus.HELD,
            [
                StoreEvent(seq=1, time=now, kind="status", status=EscrowStatus.AWAITING_PAYMENT),
                StoreEvent(seq=2, time=now, kind="status", status=EscrowStatus.HELD),
            ],
            created_at=now,
        )
    )
    settings = WebhookSettings(env="development", connect_timeout=1, attempt_timeout=2, lease=5)
    dispatcher = Dispatcher(hooks_db.db, settings, box=SecretBox(None))
    await dispatcher.tick()  # port 9 refuses: a failed first attempt
    await dispatcher.drain()
    await dispatcher.shutdown()

    page = await api.get(f"/v1/webhook-endpoints/{made['id']}/deliveries")
    assert page.status_code == 200
    rows = page.json()["deliveries"]
    assert [(r["orderRef"], r["seq"], r["type"]) for r in rows] == [
        ("gw-hook-1", 2, "order.held"),
        ("gw-hook-1", 1, "order.awaiting_payment"),
    ]
    first = rows[1]
    assert first["eventId"] == event_id("gw-hook-1", 1)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert first["lastError"].startswith("connect error")
    assert first["lastLatencyMs"] >= 0 and first["nextAttemptAt"]
    assert rows[0]["attempts"] == 0, "the second event waits for the first"

    filtered = await api.get(
        f"/v1/webhook-endpoints/{made['id']}/deliveries",
        params={"status": "pending", "orderRef": "gw-hook-1", "limit": 1},
    )
    assert len(filtered.json()["deliveries"]) == 1
    assert filtered.json()["nextBefore"] == rows[0]["id"]

    resent = await api.post(f"/v1/webhook-endpoints/{made['id']}/deliveries/{first['id']}/resend")
    assert resent.status_code == 202, resent.text
    assert resent.json()["status"] == "pending"
    missing = await api.post(f"/v1/webhook-endpoints/{made['id']}/deliveries/999999/resend")
    assert missing.status_code == 404 and missing.json()["error"] == "delivery_not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://shop.example/x"}, "invalid_url"),
        ({"url": "not a url"}, "invalid_url"),
        ({"url": "http://shop.example/hooks"}, "url_not_https"),
        ({"url": "https://shop.example/x", "eventTypes": ["order.shipped"]}, "unknown_event_type"),
        ({"url": ""}, "invalid_request"),
        ({"eventTypes": ["order.held"]}, "invalid_request"),
    ],
)
async def test_bad_endpoints_get_422_with_a_stable_code(
    api: httpx.AsyncClient, body: dict[str, object], code: str
) -> None:
    response = await api.post("/v1/webhook-endpoints", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code


async def test_too_many_endpoints(api: httpx.AsyncClient) -> None:
    for i in range(3):
        ok = await api.post("/v1/webhook-endpoints", json={"url": f"https://s{i}.example/h"})
        assert ok.status_code == 201
    refused = await api.post("/v1/webhook-endpoints", json={"url": "https://s9.example/h"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "too_many_endpoints"
    bad_patch = await api.patch(
        f"/v1/webhook-endpoints/{ok.json()['id']}", json={"url": "http://shop.example/x"}
    )
    assert bad_patch.status_code == 422 and bad_patch.json()["error"] == "url_not_https"


async def test_webhook_routes_need_an_api_key(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/webhook-endpoints", headers={"authorization": ""})
    assert response.status_code == 401


async def test_a_store_that_is_down_is_a_503(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
) -> None:
    down = WebhookService.open("postgresql://escrow:pw@127.0.0.1:9/escrow")
    app = create_app(
        backend.client,
        escrow_settings,
        CotpaySettings(private_key_file=merchant_key_file),
        orders=orders,
        webhooks=down,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {API_KEYS[0]}"},
    ) as client:
        response = await client.get("/v1/webhook-endpoints")
    await down.close()
    assert response.status_code == 503
    assert response.json()["error"] == "store_unavailable"
    assert "pw" not in response.text


async def test_openapi_lists_every_event_in_its_webhooks_section(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["webhooks"]) == {t.value for t in EventType}
    held = spec["webhooks"]["order.held"]["post"]
    headers = {p["name"] for p in held["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    ref = held["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) >= {"id", "type", "created", "data"}
    assert schema["properties"]["type"]["const"] == "order.held"
    assert schema["properties"]["data"]["$ref"].endswith("/OrderView")
    paths = set(spec["paths"])
    assert {
        "/v1/webhook-endpoints",
        "/v1/webhook-endpoints/{endpoint_id}",
        "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries",
        "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend",
    } <= paths


async def test_the_demo_prints_each_event_with_its_signature_checked(
    api: httpx.AsyncClient, hooks_db: OrderStore
) -> None:
    from starter.cli.demo import WebhookListener

    lines: list[str] = []
    listener = WebhookListener(api, lines.append)
    async with listener.receiver:
        await listener.register()
        assert listener.endpoint is not None and listener.receiver.secret
        now = datetime.now(UTC)
        statuses = [
            EscrowStatus.AWAITING_PAYMENT,
            EscrowStatus.HELD,
            EscrowStatus.DELIVERED,
            EscrowStatus.PAYING_OUT,
            EscrowStatus.PAID_OUT,
        ]
        await hooks_db.record(
            write(
                "demo-hook",
                EscrowStatus.PAID_OUT,
                [
                    StoreEvent(seq=i + 1, time=now, kind="status", status=status)
                    for i, status in enumerate(statuses)
                ],
                created_at=now,
            )
        )
        dispatcher = Dispatcher(hooks_db.db, WebhookSettings(env="development"))
        for _ in range(len(statuses) + 1):
            await dispatcher.tick()
            await dispatcher.drain()
        await dispatcher.shutdown()
        await listener.finish()
    shown = [line.split()[1] for line in lines if line.startswith("  webhook")]
    assert shown == [f"order.{s.value.lower()}" for s in statuses]
    assert all("signature ok" in line for line in lines if line.startswith("  webhook"))
    assert lines[-1].startswith("6. 5 webhook event(s) received")
    assert (await api.get("/v1/webhook-endpoints")).json()["endpoints"] == []
