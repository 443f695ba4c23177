"""Reads from the order store over HTTP: listing with filters and cursor pages, the order and its
events from the store or from the workflow, the CSV export, the money report, the 422 codes, a
used orderRef, and a store that is down (docs/http-api.md)."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import EscrowClient, OrderSummary
from starter.stack.processes import free_port
from store.api import OrderStore
from store.export import BOM, CSV_COLUMNS
from store.models import VN, MoneyKind, OrderWrite, StoreEvent, vn_today
from tests.gateway.conftest import API_KEYS, Backend, gateway_client, new_ref, order_body
from tests.store.factories import event, full_view, write
from workflows.models import EscrowStatus, OrderView

pytestmark = pytest.mark.timeout(120)
S = EscrowStatus
VIETNAMESE = "Nón lá Huế: quà tặng cho bà ngoại, giao trước Tết ạ"
AUTH = f"Bearer {API_KEYS[0]}"


def cotpay_id() -> str:
    return "09" + "".join(secrets.choice("0123456789") for _ in range(8))


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN).astimezone(UTC)


async def seed(
    store: OrderStore,
    ref: str,
    status: S,
    created: datetime,
    *,
    seller: str,
    amount: int = 150_000,
    updated: datetime | None = None,
    **fields: Any,
) -> None:
    events = [event(1, created, status=S.AWAITING_PAYMENT)]
    if updated is not None:
        events.append(event(2, updated, status=status))
    await store.record(
        write(ref, status, events, created_at=created, seller=seller, amount=amount, **fields)
    )


@pytest.fixture
async def fresh_store(tmp_path: Path) -> AsyncIterator[OrderStore]:
    store = OrderStore.open(f"sqlite+aiosqlite:///{tmp_path / 'escrow.db'}")
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def fresh_http(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    fresh_store: OrderStore,
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway over its own empty store (for totals that other tests must not change)."""
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    async with gateway_client(
        backend.client, escrow_settings, cotpay, orders, fresh_store, authorization=AUTH
    ) as http:
        yield http


@pytest.fixture
async def store_down_http(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose store is a PostgreSQL server that is not there (connection refused)."""
    store = OrderStore.open(
        f"postgresql+asyncpg://escrow:store-pw-42@127.0.0.1:{free_port()}/escrow"
    )
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    try:
        async with gateway_client(
            backend.client, escrow_settings, cotpay, orders, store, authorization=AUTH
        ) as http:
            yield http
    finally:
        await store.close()


# --- listing ----------------------------------------------------------------------------------


async def test_list_filters_sorts_and_pages_with_a_cursor(
    http: httpx.AsyncClient, gateway_store: OrderStore
) -> None:
    seller = cotpay_id()
    statuses = [S.AWAITING_PAYMENT, S.HELD, S.PAID_OUT, S.HELD, S.REFUNDED, S.PAID_OUT, S.HELD]
    refs = [new_ref("list") for _ in statuses]
    for i, (ref, status) in enumerate(zip(refs, statuses, strict=True)):
        created = at(2026, 11, 2, 9, i)
        await seed(
            gateway_store, ref, status, created, seller=seller, updated=created + timedelta(hours=i)
        )
    await seed(gateway_store, new_ref("other"), S.HELD, at(2026, 11, 2, 9, 3), seller=cotpay_id())

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while pages < 10:
        params: dict[str, Any] = {"sellerId": seller, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await http.get("/v1/orders", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [row["orderRef"] for row in body["orders"]]
        cursor = body["nextCursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(refs)), "newest first, every order once"

    row = body["orders"][0]
    todays_shape = set(OrderSummary.model_json_schema(by_alias=True)["properties"])
    assert todays_shape <= set(row), "every field of the visibility listing is still there"
    for key in ("sellerId", "buyerId", "createdAt", "updatedAt", "merchant", "waitingFor"):
        assert key in row, key
    assert row["orderRef"] == refs[0]
    assert row["status"] == "AWAITING_PAYMENT" and row["runStatus"] == "RUNNING"
    assert row["sellerId"] == seller and row["merchant"] == "default"

    held_or_paid = await http.get(
        "/v1/orders",
        params={"sellerId": seller, "status": ["HELD", "PAID_OUT"], "sort": "created_asc"},
    )
    assert [r["orderRef"] for r in held_or_paid.json()["orders"]] == [
        ref for ref, s in zip(refs, statuses, strict=True) if s in (S.HELD, S.PAID_OUT)
    ]
    paid = held_or_paid.json()["orders"][1]
    assert paid["status"] == "PAID_OUT" and paid["runStatus"] == "COMPLETED"
    assert paid["closedAt"] == paid["updatedAt"]

    created_range = await http.get(
        "/v1/orders",
        params={
            "sellerId": seller,
            "createdFrom": at(2026, 11, 2, 9, 2).isoformat(),
            "createdTo": at(2026, 11, 2, 9, 5).isoformat(),
        },
    )
    assert [r["orderRef"] for r in created_range.json()["orders"]] == refs[4:1:-1]

    updated = await http.get(
        "/v1/orders",
        params={
            "sellerId": seller,
            "updatedFrom": (at(2026, 11, 2, 9, 5) + timedelta(hours=5)).isoformat(),
            "sort": "updated_desc",
        },
    )
    assert [r["orderRef"] for r in updated.json()["orders"]] == [refs[6], refs[5]]

    # A "+" sent unencoded arrives as a space: the offset is still understood.
    spaced = await http.get(f"/v1/orders?sellerId={seller}&createdFrom=2026-11-02T09:06:00+07:00")
    assert spaced.status_code == 200, spaced.text
    assert [r["orderRef"] for r in spaced.json()["orders"]] == [refs[6]]

    by_day = await http.get(
        "/v1/orders",
        params={"sellerId": seller, "createdFrom": "2026-11-02", "createdTo": "2026-11-02"},
    )
    assert len(by_day.json()["orders"]) == len(refs)


async def test_a_cursor_only_serves_the_query_that_made_it(
    http: httpx.AsyncClient, gateway_store: OrderStore
) -> None:
    seller = cotpay_id()
    for i in range(3):
        await seed(gateway_store, new_ref("cur"), S.HELD, at(2026, 11, 3, 9, i), seller=seller)
    first = (await http.get("/v1/orders", params={"sellerId": seller, "limit": 1})).json()
    cursor = first["nextCursor"]
    assert cursor
    again = await http.get("/v1/orders", params={"sellerId": seller, "limit": 2, "cursor": cursor})
    assert again.status_code == 200, "the page size may change between pages"
    assert len(again.json()["orders"]) == 2 and again.json()["nextCursor"] is None
    other = await http.get(
        "/v1/orders", params={"sellerId": cotpay_id(), "limit": 1, "cursor": cursor}
    )
    assert other.status_code == 422
    assert other.json()["error"] == "cursor_mismatch"
    resorted = await http.get(
        "/v1/orders",
        params={"sellerId": seller, "limit": 1, "cursor": cursor, "sort": "created_asc"},
    )
    assert resorted.json()["error"] == "cursor_mismatch"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"createdFrom": "yesterday"}, "invalid_date"),
        ({"createdTo": "2026-13-45"}, "invalid_date"),
        ({"updatedFrom": "2026-11-30T10:00:00"}, "invalid_date"),  # no offset
        ({"createdFrom": "2026-11-30", "createdTo": "2026-11-01"}, "invalid_range"),
        (
            {"updatedFrom": "2026-11-30T10:00:00Z", "updatedTo": "2026-11-30T10:00:00Z"},
            "invalid_range",
        ),
        ({"cursor": "not-a-cursor!"}, "invalid_cursor"),
        ({"cursor": "eyJ2IjoxfQ"}, "invalid_cursor"),  # {"v":1}
        ({"cursor": "x" * 600}, "invalid_cursor"),
        # Parameters whose allowed values the OpenAPI document lists: FastAPI checks them.
        ({"sort": "sideways"}, "invalid_request"),
        ({"limit": 1001}, "invalid_request"),
        ({"limit": "ten"}, "invalid_request"),
        ({"status": "HELD,PAID_OUT"}, "invalid_request"),
    ],
)
async def test_bad_list_queries_are_422_with_a_stable_code(
    http: httpx.AsyncClient, params: dict[str, Any], code: str
) -> None:
    response = await http.get("/v1/orders", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    if code != "invalid_request":
        assert body["fields"][0]["type"] == code


# --- one order: store, workflow, neither ----------------------------------------------------


async def test_an_order_only_the_store_has_is_served_with_its_timeline(
    http: httpx.AsyncClient, gateway_store: OrderStore, orders: EscrowClient
) -> None:
    ref = new_ref("kept")
    view = full_view(ref)
    record = OrderWrite.from_view(
        view,
        created_at=view.timeline[0].time,
        money=lambda e: MoneyKind.HELD if e.kind == "ipn" else None,
    )
    await gateway_store.record(record)
    assert not await orders.exists(ref), "no workflow: Temporal never had this order"

    response = await http.get(f"/v1/orders/{ref}")
    assert response.status_code == 200, response.text
    assert response.headers["x-escrow-source"] == "store"
    got = OrderView.model_validate(response.json())
    assert got == view

    events = await http.get(f"/v1/orders/{ref}/events")
    assert events.status_code == 200, events.text
    body = events.json()
    assert body["source"] == "store" and body["orderRef"] == ref
    assert [e["seq"] for e in body["events"]] == list(range(1, len(view.timeline) + 1))
    held = body["events"][3]
    assert held["money"] == "held"
    assert held["transactionId"] == "TX-1" and held["amount"] == 150_000
    assert held["cotpayOrderId"] == 4242
    assert body["events"][0]["detail"] == "Bắt đầu"


async def test_an_order_the_store_does_not_have_yet_comes_from_its_workflow(
    http: httpx.AsyncClient, gateway_store: OrderStore
) -> None:
    created = await http.post("/v1/orders", json=order_body())
    assert created.status_code == 201, created.text
    ref = created.json()["orderRef"]
    assert await gateway_store.get_row(ref) is None

    response = await http.get(f"/v1/orders/{ref}")
    assert response.status_code == 200, response.text
    assert response.headers["x-escrow-source"] == "workflow"
    assert response.json()["status"] == "AWAITING_PAYMENT"

    events = await http.get(f"/v1/orders/{ref}/events")
    assert events.status_code == 200, events.text
    body = events.json()
    assert body["source"] == "workflow"
    assert [e["seq"] for e in body["events"]] == list(range(1, len(body["events"]) + 1))
    assert len(body["events"]) == len(response.json()["timeline"])
    assert all(e["money"] is None for e in body["events"])


async def test_an_order_neither_has_is_404(http: httpx.AsyncClient) -> None:
    for path in ("", "/events"):
        response = await http.get(f"/v1/orders/{new_ref()}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"] == "order_not_found"


async def test_an_order_ref_the_store_keeps_is_not_started_again(
    http: httpx.AsyncClient, gateway_store: OrderStore, orders: EscrowClient
) -> None:
    body = order_body()
    ref = body["orderRef"]
    await seed(gateway_store, ref, S.PAID_OUT, at(2025, 1, 2), seller=body["sellerId"])
    response = await http.post("/v1/orders", json=body)
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "order_ref_used"
    assert "2025-01-02" in response.json()["message"]
    assert not await orders.exists(ref), "no second order was started"


async def test_an_order_in_both_starts_idempotently(
    http: httpx.AsyncClient, gateway_store: OrderStore
) -> None:
    body = order_body()
    first = await http.post("/v1/orders", json=body)
    assert first.status_code == 201, first.text
    view = OrderView.model_validate(first.json())
    await gateway_store.record(write(body["orderRef"], view.status, [event(1, datetime.now(UTC))]))
    again = await http.post("/v1/orders", json=body)
    assert again.status_code == 200, again.text


# --- export -----------------------------------------------------------------------------------


async def test_export_streams_a_csv_with_a_bom_and_vietnamese_text(
    http: httpx.AsyncClient, gateway_store: OrderStore
) -> None:
    refs = [new_ref("csv") for _ in range(3)]
    for i, ref in enumerate(refs):
        await seed(
            gateway_store,
            ref,
            S.HELD,
            at(2019, 3, 5 + i),
            seller=cotpay_id(),
            description=VIETNAMESE if i else '=HYPERLINK("http://x")',
            waiting_for="Chờ giao hàng",
        )
    await seed(gateway_store, new_ref("csv-out"), S.HELD, at(2019, 3, 9), seller=cotpay_id())

    response = await http.get(
        "/v1/exports/orders.csv", params={"from": "2019-03-05", "to": "2019-03-08"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    data = response.content
    assert data.startswith(BOM)
    text = data[len(BOM) :].decode("utf-8")
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_ref = {row[0]: dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    assert list(by_ref) == refs, "oldest first, the range's orders only (to is included)"
    assert by_ref[refs[1]]["description"] == VIETNAMESE
    assert by_ref[refs[1]]["waitingFor"] == "Chờ giao hàng"
    assert by_ref[refs[0]]["description"].startswith("'="), "a formula is defused"
    assert by_ref[refs[0]]["createdAt"].endswith("+07:00")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"from": "2019-01-01", "to": "2020-06-01"}, 422, "range_too_large"),
        ({"from": "2019-03-08", "to": "2019-03-01"}, 422, "invalid_range"),
        ({"from": "March", "to": "2019-03-01"}, 422, "invalid_date"),
        ({"from": "2019-03-01T00:00:00", "to": "2019-03-02"}, 422, "invalid_date"),
        ({"from": "", "to": "2019-03-02"}, 422, "invalid_date"),
        ({"from": "2019-03-01"}, 422, "invalid_request"),
    ],
)
async def test_export_ranges_are_bounded(
    http: httpx.AsyncClient, params: dict[str, str], status: int, code: str
) -> None:
    response = await http.get("/v1/exports/orders.csv", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


# --- money report -----------------------------------------------------------------------------


async def test_money_report_now_and_for_a_day(
    fresh_http: httpx.AsyncClient, fresh_store: OrderStore
) -> None:
    day = vn_today() - timedelta(days=3)
    t = datetime.combine(day, datetime.min.time(), tzinfo=VN).astimezone(UTC) + timedelta(hours=9)
    seller = cotpay_id()

    def ev(seq: int, minutes: int, status: S, money: MoneyKind | None = None) -> StoreEvent:
        return StoreEvent(
            seq=seq, time=t + timedelta(minutes=minutes), kind="status", status=status, money=money
        )

    await fresh_store.record(
        write(
            "awaiting",
            S.AWAITING_PAYMENT,
            [ev(1, 0, S.AWAITING_PAYMENT)],
            amount=100_000,
            seller=seller,
        )
    )
    await fresh_store.record(
        write(
            "held",
            S.HELD,
            [
                ev(1, 0, S.AWAITING_PAYMENT),
                ev(2, 5, S.AWAITING_PAYMENT, MoneyKind.HELD),
                ev(3, 6, S.HELD),
            ],
            amount=200_000,
        )
    )
    await fresh_store.record(
        write(
            "paid",
            S.PAID_OUT,
            [
                ev(1, 0, S.AWAITING_PAYMENT),
                ev(2, 5, S.AWAITING_PAYMENT, MoneyKind.HELD),
                ev(3, 60, S.PAYING_OUT, MoneyKind.PAID_OUT),
                ev(4, 61, S.PAID_OUT),
            ],
            amount=300_000,
        )
    )

    now = await fresh_http.get("/v1/reports/money")
    assert now.status_code == 200, now.text
    report = now.json()
    assert report["currency"] == "VND" and report["day"] is None
    states = {line["state"]: (line["count"], line["amount"]) for line in report["states"]}
    assert states["awaiting_payment"] == (1, 100_000)
    assert states["held"] == (1, 200_000)
    assert states["paid_out"] == (1, 300_000)
    assert states["in_doubt"] == (0, 0)

    daily = await fresh_http.get("/v1/reports/money", params={"day": day.isoformat()})
    assert daily.status_code == 200, daily.text
    body = daily.json()
    assert body["day"] == day.isoformat()
    flows = {f["kind"]: (f["count"], f["amount"]) for f in body["flows"]}
    assert flows["held"] == (2, 500_000)
    assert flows["paid_out"] == (1, 300_000)

    before = await fresh_http.get(
        "/v1/reports/money", params={"day": (day - timedelta(days=1)).isoformat()}
    )
    assert all(line["count"] == 0 for line in before.json()["states"])


@pytest.mark.parametrize("day", ["tomorrow", "2026-02-30", "2999-01-01"])
async def test_money_report_refuses_bad_days(http: httpx.AsyncClient, day: str) -> None:
    response = await http.get("/v1/reports/money", params={"day": day})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_date"


# --- the store down ---------------------------------------------------------------------------


async def test_store_down_reads_503_healthz_degraded_orders_keep_moving(
    store_down_http: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    down = store_down_http
    health = await down.get("/healthz", headers={"authorization": ""})
    assert health.status_code == 200, "the gateway still moves money"
    assert health.json() == {"status": "degraded", "temporal": "up", "store": "down"}

    for path, params in (
        ("/v1/orders", {}),
        ("/v1/exports/orders.csv", {"from": "2026-11-01", "to": "2026-11-30"}),
        ("/v1/reports/money", {}),
        (f"/v1/orders/{new_ref()}", {}),
        (f"/v1/orders/{new_ref()}/events", {}),
    ):
        response = await down.get(path, params=params)
        assert response.status_code == 503, (path, response.text)
        assert response.json()["error"] == "store_unavailable", path
        assert "store" in response.json()["message"]
        assert "store-pw-42" not in response.text and "127.0.0.1" not in response.text

    created = await down.post("/v1/orders", json=order_body())
    assert created.status_code == 201, "a start never waits for the store"
    ref = created.json()["orderRef"]
    view = await down.get(f"/v1/orders/{ref}")
    assert view.status_code == 200, "the workflow answers while the store is down"
    assert view.headers["x-escrow-source"] == "workflow"
    events = await down.get(f"/v1/orders/{ref}/events")
    assert events.status_code == 200 and events.json()["source"] == "workflow"
    delivered = await down.post(f"/v1/orders/{ref}/cancel")
    assert delivered.status_code == 200, delivered.text

    # The store's invalid queries are refused before the store is asked.
    bad = await down.get("/v1/orders", params={"createdFrom": "soon"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_date"


# --- OpenAPI ----------------------------------------------------------------------------------


async def test_openapi_documents_the_store_routes(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/v1/orders",
        "/v1/orders/{order_ref}",
        "/v1/orders/{order_ref}/events",
        "/v1/exports/orders.csv",
        "/v1/reports/money",
    ):
        get = paths[path]["get"]
        assert "200" in get["responses"], path
        for status in ("401", "404", "422", "503"):
            schema = get["responses"][status]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorBody"), (path, status)
    ok = paths["/v1/orders"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/OrderList")
    names = {p["name"] for p in paths["/v1/orders"]["get"]["parameters"]}
    assert {
        "status",
        "sellerId",
        "buyerId",
        "createdFrom",
        "createdTo",
        "updatedFrom",
        "updatedTo",
        "sort",
        "limit",
        "cursor",
    } <= names
    assert "text/csv" in paths["/v1/exports/orders.csv"]["get"]["responses"]["200"]["content"]
    health = paths["/healthz"]["get"]["responses"]
    assert health["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Health")
    assert health["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/HealthDown")
