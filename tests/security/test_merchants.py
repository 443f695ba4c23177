"""Merchants: sealed credentials, ``cotpay-escrow merchants``, and inputs that stay what they
were for the default merchant (docs/security.md, "Merchants")."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import models as activity_models
from activities.models import CreateOrderInput, CustomerCheckInput, OrderCallInput
from cotpay.ipn import ipn_signature, verify_ipn_signature
from cotpay.settings import CotpaySettings
from runtime.codec import CodecError, KeyRing
from runtime.merchants import (
    MerchantAccount,
    MerchantDirectory,
    MerchantUnavailable,
    open_credentials,
    seal_credentials,
)
from sandbox.keys import ensure_keys
from starter.cli import main
from store.access import AccessStore
from workflows import models as workflow_models
from workflows.models import OrderInput, workflow_id_for

RING = KeyRing.parse(
    "new:" + base64.b64encode(b"n" * 32).decode() + ",old:" + base64.b64encode(b"o" * 32).decode()
)
OLD_RING = KeyRing.parse("old:" + base64.b64encode(b"o" * 32).decode())


def test_sealed_credentials_open_only_for_their_merchant_and_ring() -> None:
    secrets = {"accessToken": "tok-123", "cotpayPublicKey": "PUB", "merchantPrivateKey": "PRIV"}
    sealed = seal_credentials(RING, "shopb", secrets)
    assert sealed.startswith("sealed-v1:new:") and "tok-123" not in sealed
    assert open_credentials(RING, "shopb", sealed) == secrets
    with pytest.raises(CodecError, match="fail authentication"):
        open_credentials(RING, "shopc", sealed)  # moved to another merchant's row
    with pytest.raises(CodecError, match="not in the key ring"):
        open_credentials(OLD_RING, "shopb", sealed)
    with pytest.raises(CodecError, match="not in the key ring"):
        open_credentials(None, "shopb", sealed)
    # After a rotation (new key first), blobs sealed with the old key still open.
    assert open_credentials(RING, "shopb", seal_credentials(OLD_RING, "shopb", secrets)) == secrets


def test_default_merchant_payloads_and_ids_are_unchanged() -> None:
    assert activity_models.DEFAULT_MERCHANT == workflow_models.DEFAULT_MERCHANT == "default"
    converter = pydantic_data_converter.payload_converter
    check = CustomerCheckInput(order_ref="r", seller_id="1", buyer_id="2")
    [payload] = converter.to_payloads([check])
    assert json.loads(payload.data) == {"order_ref": "r", "seller_id": "1", "buyer_id": "2"}
    [other] = converter.to_payloads([check.model_copy(update={"merchant": "shopb"})])
    assert json.loads(other.data)["merchant"] == "shopb"
    [back] = converter.from_payloads([other], [CustomerCheckInput])
    assert back.merchant == "shopb"
    for model in (CreateOrderInput, OrderCallInput, OrderInput):
        assert "merchant" in model.model_fields
    order = OrderInput(order_ref="r", seller_id="0911000001", buyer_id="0922000002", amount=50_000)
    assert "merchant" not in order.model_dump(by_alias=True)
    assert workflow_id_for("r") == "escrow-r"
    assert workflow_id_for("r", "shopb") == "escrow:shopb:r"


def test_ipn_signatures_cover_the_merchant() -> None:
    secret = "s" * 40
    single = ipn_signature(secret, "r", "payment")
    per_b = ipn_signature(secret, "r", "payment", "shopb")
    per_c = ipn_signature(secret, "r", "payment", "shopc")
    assert len({single, per_b, per_c}) == 3
    assert verify_ipn_signature(secret, "r", "payment", per_b, "shopb")
    assert not verify_ipn_signature(secret, "r", "payment", per_b, "shopc")
    assert not verify_ipn_signature(secret, "r", "payment", per_b)
    assert not verify_ipn_signature(secret, "r", "payment", "oZ\x07W]\u0083")  # no 500


# --- the CLI, in this process ---------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("ESCROW_", "COTPAY_")):
            monkeypatch.delenv(name)
    db = tmp_path / "escrow.db"
    monkeypatch.setenv("ESCROW_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    return db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def account_of(db: Path, name: str, ring: KeyRing | None) -> MerchantAccount:
    async def resolve() -> MerchantAccount:
        access = AccessStore.open(f"sqlite+aiosqlite:///{db}")
        try:
            return await MerchantDirectory(access, default=CotpaySettings(), ring=ring).account(
                name
            )
        finally:
            await access.close()

    return asyncio.run(resolve())


def test_merchants_add_sealed_and_files(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ensure_keys(tmp_path / "sandbox-keys")
    credentials = keys.write_credentials("http://127.0.0.1:9", "encrypted")

    code, refused = run(capsys, "merchants", "add", "shopb", "--env-file", str(credentials))
    assert code == 1 and refused["error"] == "config_error"  # sealing needs a key ring

    monkeypatch.setenv("ESCROW_CODEC_KEYS", "new:" + base64.b64encode(b"n" * 32).decode())
    code, added = run(capsys, "merchants", "add", "shopb", "--env-file", str(credentials))
    assert code == 0, added
    assert added["credentials"] == "encrypted" and added["appId"] == keys.app_id
    raw = env.read_bytes()
    assert keys.access_token.encode() not in raw and b"PRIVATE KEY" not in raw
    account = account_of(env, "shopb", RING)
    assert account.settings.access_token.get_secret_value() == keys.access_token
    assert account.settings.base_url == "http://127.0.0.1:9"
    account.envelope()  # both keys present and readable

    code, files = run(
        capsys, "merchants", "add", "shopc", "--env-file", str(credentials), "--store", "files"
    )
    assert code == 0 and files["credentials"] == "files"
    assert account_of(env, "shopc", None).settings.app_id == keys.app_id

    code, again = run(capsys, "merchants", "add", "shopb", "--env-file", str(credentials))
    assert code == 1 and again["error"] == "merchant_exists"
    code, bad = run(capsys, "merchants", "add", "default", "--env-file", str(credentials))
    assert code == 1 and bad["error"] == "invalid_request"

    code, listed = run(capsys, "merchants", "list")
    names = [m["name"] for m in listed["merchants"]]
    assert names == ["default", "shopb", "shopc"]
    assert keys.access_token not in json.dumps(listed)

    code, key = run(capsys, "keys", "create", "--merchant", "shopb", "--role", "shop")
    assert code == 0 and key["merchant"] == "shopb"
    code, _ = run(capsys, "merchants", "disable", "shopb")
    assert code == 0
    with pytest.raises(MerchantUnavailable):
        account_of(env, "shopb", RING)

    async def still_works() -> bool:
        access = AccessStore.open(f"sqlite+aiosqlite:///{env}")
        try:
            return await access.authenticate(str(key["key"])) is not None
        finally:
            await access.close()

    assert not asyncio.run(still_works())  # a disabled merchant's keys stop
    code, audit = run(capsys, "ops", "audit", "--action", "merchant.")
    actions = [e["action"] for e in audit["events"]]
    assert actions == ["merchant.disable", "merchant.add", "merchant.add"]
