"""Random payloads, sealed correctly or not, to every endpoint: never 500, never a state change."""

from __future__ import annotations

import random
import string
from typing import Any

from cotpay.envelope import EncryptedEnvelope, load_private_key, load_public_key
from cotpay.models import ENDPOINTS
from sandbox.testing import RunningSandbox
from tests.sandbox.helpers import make_users

FIELDS = ["partnerId", "buyerId", "amount", "desc", "ipnUrl", "idOrder", "payMethod", "phone"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 29_999, 30_000, 2**63, 10**30, 1_000_001])
    if kind == 2:
        return rng.choice([0.5, 1e308, -0.0, 30000.0])
    if kind in (3, 4, 5):
        size = rng.choice([0, 1, 10, 11, 255, 256, 300])
        return "".join(rng.choice(string.printable + "ễơ\u0000") for _ in range(size))
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(FIELDS): _value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _payload(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return _value(rng)
    return {rng.choice(FIELDS): _value(rng) for _ in range(rng.randrange(8))}


async def test_random_payloads_never_500(sandbox: RunningSandbox):
    await make_users(sandbox)
    envelope = EncryptedEnvelope(
        peer_public_key=load_public_key(sandbox.keys.cotpay_public_file.read_bytes()),
        own_private_key=load_private_key(sandbox.keys.merchant_private_file.read_bytes()),
    )
    before = (await sandbox.admin.get("/sandbox/ledger")).json()
    orders = len(sandbox.state.store.orders)
    rng = random.Random(20261125)
    statuses: set[int] = set()
    for _ in range(150):
        endpoint = rng.choice(list(ENDPOINTS.values()))
        if endpoint.name in ("create-order", "sign-up"):
            endpoint = ENDPOINTS["payment"]
        sealed = envelope.seal(
            _payload(rng),
            path=endpoint.path,
            access_token=sandbox.keys.access_token,
            app_id=sandbox.keys.app_id,
        )
        body = sealed.body
        if rng.random() < 0.2:
            cut = rng.randrange(len(body))
            body = body[:cut] + bytes([rng.randrange(256)]) + body[cut + 1 :]
        r = await sandbox.admin.post(endpoint.path, content=body, headers=sealed.headers)
        statuses.add(r.status_code)
        assert r.status_code in (200, 400), r.text
    deep = b'{"x-api-message":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    r = await sandbox.admin.post(
        ENDPOINTS["payment"].path, content=deep[:60_000], headers=sealed.headers
    )
    assert r.status_code == 400 and r.json()["reason"] == "bad_json", r.text
    r = await sandbox.admin.post("/sandbox/orders/1/pay", content=b"[" * 30_000)
    assert r.status_code == 422, r.text
    assert (await sandbox.admin.get("/sandbox/ledger")).json() == before
    assert len(sandbox.state.store.orders) == orders
    assert statuses == {200, 400}
