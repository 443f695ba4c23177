"""Schemathesis over the gateway's OpenAPI document with a key of each role (issue 11).

Each caller is a store key, created as ``cotpay-escrow keys create`` does
(``AccessStore.create_key``): a ``viewer``, a ``shop`` and an ``operator`` of the default
merchant (A), and the same three of a second merchant, ``acme`` (B). Every ``/v1`` operation
gets the examples and fuzzing phases (bounded and derandomized: ``settings.role_config``), sent
with the caller's key, and every answer must:

- not be a 5xx, and match the document (status code, content type, headers, body schema);
- follow the access table, ``tests/gateway/access_table.py`` (the one the role x route matrix
  reads): a role below the operation's never gets a 2xx, its answer is ``403 forbidden`` (or
  an answer of the layers in front of the rule: ``404`` for a path no route serves, ``413`` for
  a ``Content-Length`` over the limit), never one of the route's; a role at or above it is never
  ``403 forbidden``;
- for merchant B, on merchant A's orders: never a 2xx, and a ``404`` exactly like the one an
  order that does not exist gets (B's fuzz runs the ``{order_ref}`` operations only, each on one
  of A's orders).

Merchant A's fuzz sends every other case with ``{order_ref}`` to one of A's orders (started
before the run), so that an operation a role may not perform would have something to act on.
docs/reliability-fuzzing.md, docs/security.md.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, Response
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.schemas import OpenApiSchema

from store.access import AccessStore, Actor
from store.access_models import DEFAULT_MERCHANT, Role
from store.api import OrderStore
from tests.fuzz.bridge import LoopBridge
from tests.fuzz.settings import role_config
from tests.gateway.access_table import RULES
from tests.gateway.conftest import new_ref, order_body

pytestmark = pytest.mark.timeout(300)

OTHER_MERCHANT = "acme"
ORDERS_OF_A = 2


@dataclass(frozen=True)
class Caller:
    """One store key: its role, its merchant, and the bearer token."""

    role: Role
    merchant: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def label(self) -> str:
        return f"{self.merchant} {self.role.value}"


CALLERS = [
    *((DEFAULT_MERCHANT, role) for role in Role),
    *((OTHER_MERCHANT, role) for role in Role),
]


@dataclass(frozen=True)
class RoleWorld:
    """The keys of both merchants, and merchant A's orders."""

    callers: dict[tuple[str, Role], Caller]
    orders_of_a: list[str]


@pytest.fixture(scope="session")
async def role_world(gateway_http: httpx.AsyncClient, gateway_store: OrderStore) -> RoleWorld:
    """Store keys of every role for merchants A (default) and B (acme), created in the gateway's
    own store as the CLI creates them, and orders of A started by A's shop key."""
    access = AccessStore(gateway_store.db)
    admin = Actor("fuzz-roles")
    await access.add_merchant(OTHER_MERCHANT, by=admin, app_id="app-acme")
    callers: dict[tuple[str, Role], Caller] = {}
    for merchant, role in CALLERS:
        created = await access.create_key(
            merchant=merchant, role=role, name=f"fuzz-{merchant}-{role.value}", by=admin
        )
        callers[(merchant, role)] = Caller(role, merchant, created.key)
    shop = callers[(DEFAULT_MERCHANT, Role.shop)]
    refs = [new_ref("fuzz-role") for _ in range(ORDERS_OF_A)]
    started = await asyncio.gather(
        *(
            gateway_http.post("/v1/orders", json=order_body(ref), headers=shop.headers)
            for ref in refs
        )
    )
    assert [r.status_code for r in started] == [201] * ORDERS_OF_A, [r.text for r in started]
    return RoleWorld(callers, refs)


@pytest.fixture(scope="session", params=CALLERS, ids=lambda c: f"{c[0]}-{c[1].value}")
def caller(request: pytest.FixtureRequest, role_world: RoleWorld) -> Caller:
    merchant, role = request.param
    return role_world.callers[(merchant, role)]


@pytest.fixture(scope="session")
def role_schema(gateway_bridge: LoopBridge, caller: Caller) -> OpenApiSchema:
    """The gateway's ``/v1`` operations; for merchant B only those on one order."""
    one_order = caller.merchant != DEFAULT_MERCHANT
    config = role_config(r"^/v1/.*\{order_ref\}" if one_order else r"^/v1/")
    return schemathesis.openapi.from_wsgi("/openapi.json", gateway_bridge, config=config)


# What a role below an operation's may get: its refusal, or an answer of the layers in front of
# it, none of which runs the route or reads the body: a path no route serves, a Content-Length
# over the body limit (BodyLimit is outside AccessControl).
REFUSED_BEFORE_THE_ROUTE = {(403, "forbidden"), (404, "not_found"), (413, "body_too_large")}


def _error(response: Response | httpx.Response) -> str | None:
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def follows_the_access_table(caller: Caller) -> Any:
    """A check: the answer is what ``RULES`` says the caller's role may have."""

    def check(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
        needed = RULES[(case.method.upper(), case.path)]
        status = response.status_code
        if needed is None:
            return None
        if not caller.role.allows(needed):
            if 200 <= status < 300:
                raise AssertionError(
                    f"authorization bypass: a {caller.role.value} key got {status} on"
                    f" {case.method} {case.path}, which needs {needed.value}"
                )
            if (status, _error(response)) in REFUSED_BEFORE_THE_ROUTE:
                return None
            raise AssertionError(
                f"a {caller.role.value} key on {case.method} {case.path} (needs {needed.value})"
                f" got {status} {response.text[:200]}, not 403 forbidden"
            )
        if status == 403 and _error(response) == "forbidden":
            raise AssertionError(
                f"a {caller.role.value} key refused on {case.method} {case.path}, which needs"
                f" only {needed.value}"
            )
        return None

    check.__name__ = "follows_the_access_table"
    return check


schema = schemathesis.pytest.from_fixture("role_schema")


@schema.parametrize()
def test_roles_follow_the_access_table(
    case: Case[Any], caller: Caller, role_world: RoleWorld
) -> None:
    path = case.path_parameters or {}
    other = caller.merchant != DEFAULT_MERCHANT
    if "order_ref" in path:
        pick = zlib.crc32(str(path["order_ref"]).encode())
        if other or pick % 2 == 0:
            path["order_ref"] = role_world.orders_of_a[pick % ORDERS_OF_A]
    response = case.call_and_validate(
        headers=caller.headers, additional_checks=[follows_the_access_table(caller)]
    )
    if not other:
        return
    assert not 200 <= response.status_code < 300, (
        f"merchant B's {caller.role.value} key got {response.status_code} on merchant A's order:"
        f" {case.method} {case.formatted_path}"
    )
    # Exactly what an order that does not exist gets: status, code and message (ref aside).
    ref = path["order_ref"]
    missing = new_ref("fuzz-none")
    path["order_ref"] = missing
    unknown = case.call(headers=caller.headers)
    assert response.status_code == unknown.status_code, (response.text, unknown.text)
    assert response.text.replace(ref, "REF") == unknown.text.replace(missing, "REF")
