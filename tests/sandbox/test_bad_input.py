"""Bad input never answers 500 and never changes users, orders or the ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cotpay.envelope import (
    BODY_FIELD,
    H_ACTION,
    H_KEY,
    H_VALIDATE,
    EncryptedEnvelope,
    Sealed,
    generate_private_key,
    is_enveloped,
    load_private_key,
    load_public_key,
)
from cotpay.models import ENDPOINTS
from sandbox.testing import RunningSandbox, running_sandbox
from tests.sandbox.helpers import BUYER, IPN, SELLER, make_users

PAY_PATH = ENDPOINTS["payment"].path
CREATE_PATH = ENDPOINTS["create-order"].path


def _client_envelope(sb: RunningSandbox) -> EncryptedEnvelope:
    return EncryptedEnvelope(
        peer_public_key=load_public_key(sb.keys.cotpay_public_file.read_bytes()),
        own_private_key=load_private_key(sb.keys.merchant_private_file.read_bytes()),
    )


def _seal(sb: RunningSandbox, payload: Any, path: str = CREATE_PATH, **kw: str) -> Sealed:
    return _client_envelope(sb).seal(
        payload,
        path=kw.get("action_path", path),
        access_token=kw.get("token", sb.keys.access_token),
        app_id=kw.get("app_id", sb.keys.app_id),
    )


def _open(sb: RunningSandbox, response: httpx.Response) -> dict[str, Any]:
    assert is_enveloped(response.headers, response.content), response.text
    opened = _client_envelope(sb).open(response.headers, response.content)
    assert isinstance(opened.payload, dict)
    return opened.payload


def _order(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "partnerId": SELLER,
        "buyerId": BUYER,
        "amount": 50_000,
        "desc": "d",
        "ipnUrl": IPN,
    }
    payload.update(overrides)
    return payload


@pytest.fixture(scope="module")
async def sb(keys_dir) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(keys_dir, payout_rule="immediate") as running:
        await make_users(running)
        yield running


async def _state(sb: RunningSandbox) -> Any:
    return (
        dict(sb.state.store.users),
        {k: v.model_dump_json() for k, v in sb.state.store.orders.items()},
        (await sb.admin.get("/sandbox/ledger")).json(),
    )


async def _post(sb: RunningSandbox, path: str, sealed: Sealed) -> httpx.Response:
    return await sb.admin.post(path, content=sealed.body, headers=sealed.headers)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": 29_999}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 50_000.0}, "amount"),
        ({"amount": "50000"}, "amount"),
        ({"partnerId": "S" * 11}, "partnerId"),
        ({"desc": "x" * 256}, "desc"),
        ({"ipnUrl": "http://x/" + "a" * 250}, "ipnUrl"),
        ({"extra": 1}, "extra"),
        ({"orderCode": "bad code!"}, "orderCode"),
    ],
)
async def test_create_order_validation_is_10500(sb, overrides, field):
    before = await _state(sb)
    payload = _order(**overrides)
    if field == "partnerId" and "partnerId" not in overrides:
        payload.pop("partnerId")
    r = await _post(sb, CREATE_PATH, _seal(sb, payload))
    assert r.status_code == 200
    answer = _open(sb, r)
    assert answer["code"] == 10500 and answer["order"] is None
    assert field in [e["field"] for e in answer["errors"]]
    assert await _state(sb) == before


async def test_missing_field_and_non_object(sb):
    before = await _state(sb)
    payload = _order()
    del payload["amount"]
    answer = _open(sb, await _post(sb, CREATE_PATH, _seal(sb, payload)))
    assert answer["code"] == 10500 and answer["errors"][0]["field"] == "amount"
    answer = _open(sb, await _post(sb, CREATE_PATH, _seal(sb, [1, 2])))
    assert answer["code"] == 10500
    assert await _state(sb) == before


async def test_unknown_pay_method_is_10500(sb):
    path = ENDPOINTS["verify-order"].path
    payload = {
        "idOrder": 1_000_001,
        "partnerId": SELLER,
        "buyerId": BUYER,
        "payMethod": "BITCOIN",
        "ipnUrl": IPN,
    }
    answer = _open(sb, await _post(sb, path, _seal(sb, payload, path)))
    assert answer["code"] == 10500 and answer["errors"][0]["field"] == "payMethod"


@pytest.mark.parametrize(
    "case", ["no_token", "wrong_token", "wrong_app", "no_app"], ids=lambda c: c
)
async def test_token_and_app_id_checked(sb, case):
    before = await _state(sb)
    sealed = _seal(sb, _order())
    headers = dict(sealed.headers)
    if case == "no_token":
        del headers["Authorization"]
    elif case == "wrong_token":
        headers["Authorization"] = "nope"
    elif case == "wrong_app":
        headers["x-api-client"] = "other"
    else:
        del headers["x-api-client"]
    r = await sb.admin.post(CREATE_PATH, content=sealed.body, headers=headers)
    assert r.status_code == 200
    assert _open(sb, r)["code"] == 11400
    assert await _state(sb) == before


def _tamper(sealed: Sealed, case: str, other_key_envelope: EncryptedEnvelope) -> Sealed:
    headers = dict(sealed.headers)
    body = sealed.body
    if case == "missing_key":
        del headers[H_KEY]
    elif case == "missing_validate":
        del headers[H_VALIDATE]
    elif case == "missing_action":
        del headers[H_ACTION]
    elif case == "tampered_validate":
        headers[H_VALIDATE] = "0" * 32
    elif case == "foreign_rsa_key":
        headers[H_KEY] = other_key_envelope.seal({}, path="/", access_token="", app_id="").headers[
            H_KEY
        ]
    elif case == "garbage_rsa_key":
        headers[H_KEY] = "not-base64!!"
    elif case == "malformed_json":
        body = b"{not json"
    elif case == "no_message":
        body = json.dumps({"other": "x"}).encode()
    elif case == "tampered_message":
        message = json.loads(body)[BODY_FIELD]
        body = json.dumps({BODY_FIELD: message[:-8] + "AAAAAAA="}).encode()
    return Sealed(headers, body)


@pytest.mark.parametrize(
    "case",
    [
        "missing_key",
        "missing_validate",
        "missing_action",
        "tampered_validate",
        "foreign_rsa_key",
        "garbage_rsa_key",
        "malformed_json",
        "no_message",
        "tampered_message",
    ],
)
async def test_bad_envelope_is_plain_400(sb, case):
    before = await _state(sb)
    stranger = EncryptedEnvelope(
        peer_public_key=generate_private_key().public_key(), own_private_key=None
    )
    r = await _post(sb, CREATE_PATH, _tamper(_seal(sb, _order()), case, stranger))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "bad_envelope" and body["reason"] and body["message"]
    assert await _state(sb) == before


async def test_action_for_another_endpoint_is_refused(sb):
    before = await _state(sb)
    r = await _post(sb, CREATE_PATH, _seal(sb, _order(), action_path=PAY_PATH))
    assert r.status_code == 400 and r.json()["reason"] == "action_mismatch"
    assert await _state(sb) == before


async def test_unknown_endpoint_and_routes(sb):
    r = await _post(sb, "/api/web-ecommerce/refund-now", _seal(sb, _order()))
    assert r.status_code == 404 and r.json()["error"] == "unknown_endpoint"
    r = await sb.admin.get("/api/web-ecommerce/create-order")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    r = await sb.admin.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_oversize_body_is_413(sb):
    before = await _state(sb)
    r = await sb.admin.post(CREATE_PATH, content=b"x" * (70 * 1024))
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    assert await _state(sb) == before


async def test_error_rate_fault_is_503_without_state_change(sb):
    await sb.admin.put("/sandbox/faults", json={"errorRate": 1.0})
    before = await _state(sb)
    r = await _post(sb, CREATE_PATH, _seal(sb, _order()))
    assert r.status_code == 503 and r.json()["error"] == "injected_fault"
    assert await _state(sb) == before
    await sb.admin.put("/sandbox/faults", json={})
    assert _open(sb, await _post(sb, CREATE_PATH, _seal(sb, _order())))["code"] == 10100


async def test_plain_mode(keys_dir):
    async with running_sandbox(keys_dir, envelope="plain") as plain:
        await make_users(plain)
        headers = {
            "Authorization": plain.keys.access_token,
            "x-api-client": plain.keys.app_id,
            "x-api-action": CREATE_PATH,
        }
        r = await plain.admin.post(CREATE_PATH, json=_order(), headers=headers)
        assert r.status_code == 200 and r.json()["code"] == 10100
        assert r.json()["order"]["idOrder"] >= 1_000_001
        r = await plain.admin.post(CREATE_PATH, content=b"{oops", headers=headers)
        assert r.status_code == 400 and r.json()["reason"] == "bad_json"
        r = await plain.admin.post(
            CREATE_PATH, json=_order(), headers={**headers, "Authorization": "x"}
        )
        assert r.json()["code"] == 11400
        r = await plain.admin.post(CREATE_PATH, json=_order(amount=False), headers=headers)
        assert r.json()["code"] == 10500
        assert plain.cotpay_settings().envelope == "plain"


async def test_admin_errors(sb):
    r = await sb.admin.get("/sandbox/orders/123")
    assert r.status_code == 404 and r.json()["error"] == "order_not_found"
    r = await sb.admin.post("/sandbox/orders/123/pay", json={"outcome": "maybe"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "outcome"
    r = await sb.admin.get("/sandbox/users/nobody")
    assert r.status_code == 404 and r.json()["error"] == "user_not_found"
    r = await sb.admin.put("/sandbox/users/ABCDEFGHIJK", json={})
    assert r.status_code == 422
    r = await sb.admin.patch(f"/sandbox/users/{SELLER}", json={"walletLinked": "yes"})
    assert r.status_code == 422
    r = await sb.admin.put("/sandbox/clock", json={})
    assert r.status_code == 422
    r = await sb.admin.put("/sandbox/faults", json={"errorRate": 2})
    assert r.status_code == 422
    r = await sb.admin.post("/sandbox/orders/1/pay", content=b"{bad")
    assert r.status_code == 422
