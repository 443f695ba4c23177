"""Who may call which route (docs/security.md): every role x every route, table-driven.

``RULES`` (tests/gateway/access_table.py, which the role fuzz tests/fuzz/test_roles.py reads
too) is the access table. ``test_every_route_has_exactly_the_rule_of_the_table`` fails when a
route is added without a rule, or without a line in the table; the matrix then checks each caller
on each route: 401 without a usable key, 403 below the route's role, through otherwise, and the
request body is never read before the answer. Keys come from ``ESCROW_API_KEYS`` and from the
store alike.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import structlog.testing
from fastapi import FastAPI

from cotpay.settings import CotpaySettings
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.gateway.app import create_app
from starter.gateway.auth import PUBLIC, route_table
from store.access import AccessStore, Actor
from store.access_models import AuditFilter, Role
from store.api import OrderStore
from tests.gateway.access_table import RULES
from tests.gateway.conftest import Backend, new_ref, order_body
from workflows.models import OperatorAction, OrderView

pytestmark = pytest.mark.timeout(180)

# Routes with a write method that take no body (FastAPI never reads one).
BODYLESS = {("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend")}

ENV_KEYS = {
    Role.viewer: "env-viewer-key-0123456789abcdef",
    Role.shop: "env-shop-key-0123456789abcdef",
    Role.operator: "env-operator-key-0123456789abcdef",
}


def api_routes(app: FastAPI) -> dict[tuple[str, str], Role | str | None]:
    """Every route the app serves, by method and path, with the role its rule needs."""
    found: dict[tuple[str, str], Role | str | None] = {}
    for entry in route_table(app.routes):
        if not entry.api:
            continue
        for method in entry.methods - {"HEAD"}:
            if entry.rule is None:
                found[(method, entry.path)] = "NO RULE"
            else:
                found[(method, entry.path)] = entry.rule.role
    return found


@pytest.fixture(scope="module")
async def access(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AccessStore]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('keys') / 'escrow.db'}"
    store = OrderStore.open(url)
    await store.upgrade()
    try:
        yield AccessStore(store.db)
    finally:
        await store.close()


@dataclass(frozen=True)
class Callers:
    """Bearer tokens by name: env and store keys of each role, and unusable ones."""

    tokens: dict[str, str | None]
    roles: dict[str, Role | None]


@pytest.fixture(scope="module")
async def callers(access: AccessStore) -> Callers:
    now = datetime.now(UTC)
    admin = Actor("test")
    tokens: dict[str, str | None] = {"no key": None, "malformed": "not-a-key"}
    roles: dict[str, Role | None] = {"no key": None, "malformed": None}
    for role, key in ENV_KEYS.items():
        tokens[f"env {role.value}"] = key
        roles[f"env {role.value}"] = role
        created = await access.create_key(
            merchant="default", role=role, name=f"{role.value}-key", by=admin
        )
        tokens[f"store {role.value}"] = created.key
        roles[f"store {role.value}"] = role
    revoked = await access.create_key(
        merchant="default", role=Role.operator, name="revoked", by=admin
    )
    await access.revoke_key(revoked.api_key.key_id, by=admin)
    expired = await access.create_key(
        merchant="default",
        role=Role.operator,
        name="expired",
        by=admin,
        at=now - timedelta(hours=2),
        expires_at=now - timedelta(hours=1),
    )
    wrong = tokens["store operator"]
    assert wrong is not None
    tokens |= {
        "revoked operator": revoked.key,
        "expired operator": expired.key,
        "wrong secret": wrong[:-2] + ("AA" if not wrong.endswith("AA") else "BB"),
    }
    roles |= {"revoked operator": None, "expired operator": None, "wrong secret": None}
    return Callers(tokens, roles)


@pytest.fixture(scope="module")
def app(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
    access: AccessStore,
) -> FastAPI:
    escrow = escrow_settings.model_copy(
        update={"api_keys": ",".join(f"{key}:{role.value}" for role, key in ENV_KEYS.items())}
    )
    cotpay = CotpaySettings(private_key_file=merchant_key_file)
    return create_app(backend.client, escrow, cotpay, orders=orders, access=access)


def test_every_route_has_exactly_the_rule_of_the_table(app: FastAPI) -> None:
    served = api_routes(app)
    missing = sorted(k for k, v in served.items() if v == "NO RULE")
    assert missing == [], f"routes without an access rule: {missing}"
    unlisted = sorted(set(served) - set(RULES))
    assert unlisted == [], f"routes missing from RULES (add a line with their role): {unlisted}"
    assert served == RULES


def test_a_route_without_a_rule_is_found_and_refused() -> None:
    """The guard itself: a route nobody gave a rule shows up as such, and answers 403."""
    bare = FastAPI()

    @bare.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {"leak": "yes"}

    assert api_routes(bare) == {("GET", "/v1/forgotten"): "NO RULE"}


async def test_a_route_without_a_rule_answers_403(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    orders: EscrowClient,
) -> None:
    escrow = escrow_settings.model_copy(update={"api_keys": f"{ENV_KEYS[Role.operator]}"})
    app = create_app(
        backend.client, escrow, CotpaySettings(private_key_file=merchant_key_file), orders=orders
    )

    @app.get("/v1/forgotten")
    async def forgotten() -> dict[str, str]:
        return {"leak": "yes"}

    @app.get("/elsewhere")
    async def elsewhere() -> dict[str, str]:
        return {"leak": "yes"}

    headers = {"authorization": f"Bearer {ENV_KEYS[Role.operator]}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test", headers=headers
    ) as http:
        for path in ("/v1/forgotten", "/elsewhere"):
            response = await http.get(path)
            assert response.status_code == 403, path
            assert response.json()["error"] == "no_access_rule"
        assert (await http.get("/v1/forgotten", headers={"authorization": ""})).status_code == 401


class Body:
    """A request body that records whether the app read it."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        yield self.payload


def concrete(path: str, ref: str) -> str:
    return (
        path.replace("{order_ref}", ref)
        .replace("{step}", "payment")
        .replace("{endpoint_id}", "we_0123456789abcdef")
        .replace("{delivery_id}", "1")
    )


CASES = [
    (method, path, caller)
    for (method, path), role in RULES.items()
    if role
    for caller in (
        "no key",
        "malformed",
        "wrong secret",
        "revoked operator",
        "expired operator",
        "env viewer",
        "env shop",
        "env operator",
        "store viewer",
        "store shop",
        "store operator",
    )
]


@pytest.mark.parametrize(("method", "path", "caller"), CASES)
async def test_role_matrix(
    app: FastAPI, callers: Callers, method: str, path: str, caller: str
) -> None:
    needed = RULES[(method, path)]
    assert needed is not None
    token = callers.tokens[caller]
    role = callers.roles[caller]
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    takes_body = method in ("POST", "PATCH") and (method, path) not in BODYLESS
    body = Body(b"{}") if takes_body else None
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test", timeout=60
        ) as http:
            response = await http.request(
                method, concrete(path, new_ref("authz")), headers=headers, content=body
            )
    if role is None:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    elif not role.allows(needed):
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
    else:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500 or response.status_code in (501, 503), response.text
    if response.status_code in (401, 403):
        assert body is None or not body.read, "the body was read before the refusal"
    elif body is not None:
        assert body.read
    if token is not None:
        assert token not in json.dumps(logs, default=str), "a log line carries the key"


async def test_public_routes_need_no_key(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
    ) as http:
        assert (await http.get("/healthz")).status_code == 200
        forged = await http.post(f"/ipn/{new_ref()}/payment?sig=forged", json={})
        assert forged.status_code == 403
        assert forged.json()["error"] == "bad_signature"
        assert PUBLIC.role is None


class RecordingOrders(EscrowClient):
    """The real client, remembering the operator actions the gateway sends."""

    sent: list[OperatorAction]

    async def operator_action(
        self, order_ref: str, action: OperatorAction, *, merchant: str = "default"
    ) -> OrderView:
        self.sent.append(action)
        return await super().operator_action(order_ref, action, merchant=merchant)


async def test_operator_actions_record_the_keys_name_not_a_typed_one(
    backend: Backend,
    escrow_settings: EscrowSettings,
    merchant_key_file: Path,
    callers: Callers,
    access: AccessStore,
) -> None:
    recording = RecordingOrders(backend.client, task_queue=backend.task_queue, search_salt=None)
    recording.sent = []
    app = create_app(
        backend.client,
        escrow_settings,
        CotpaySettings(private_key_file=merchant_key_file),
        orders=recording,
        access=access,
    )
    token = callers.tokens["store operator"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    ) as http:
        body = order_body()
        ref = body["orderRef"]
        assert (await http.post("/v1/orders", json=body)).status_code == 201
        refused = await http.post(
            f"/v1/orders/{ref}/operator",
            json={"action": "release", "operator": "someone-else", "note": "too early"},
        )
        assert refused.status_code == 409
        unknown = await http.post(f"/v1/orders/{new_ref()}/operator", json={"action": "retry"})
        assert unknown.status_code == 404
    assert [a.operator for a in recording.sent] == [
        recording.sent[0].operator,
        recording.sent[0].operator,
    ]
    assert recording.sent[0].operator.startswith("key:operator-key (")
    assert recording.sent[0].note == "too early"
    events = await access.list_audit(AuditFilter(action="order.operator."))
    mine = [e for e in events if e.target == ref]
    assert [e.action for e in mine] == ["order.operator.release"]
    assert mine[0].actor == recording.sent[0].operator and mine[0].key_id
    assert mine[0].data == {
        "note": "too early",
        "typedOperator": "someone-else",
        "outcome": "invalid_state",
    }


async def test_a_revoked_store_key_stops_within_the_cache_time(
    app: FastAPI, access: AccessStore
) -> None:
    created = await access.create_key(
        merchant="default", role=Role.viewer, name="soon-revoked", by=Actor("test")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway.test",
        headers={"authorization": f"Bearer {created.key}"},
    ) as http:
        assert (await http.get(f"/v1/orders/{new_ref()}")).status_code == 404
        await access.revoke_key(created.api_key.key_id, by=Actor("test"))
        app.state.keys.forget()  # the gateway's cache (ESCROW_KEY_CACHE_SECONDS) runs out
        assert (await http.get(f"/v1/orders/{new_ref()}")).status_code == 401
    used = await access.get_key(created.api_key.key_id)
    assert used is not None and used.last_used_at is not None
