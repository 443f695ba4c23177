"""Merchants, API keys and the audit trail in the store, on both engines (docs/security.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store.access import AccessStore, Actor, KeyNotFound, MerchantExists, UnknownMerchant
from store.access_models import AuditFilter, Role, key_hash, parse_api_key
from store.api import OrderStore
from store.schema import api_keys
from tests.store.factories import T0

ADMIN = Actor("cli:admin")


@pytest.fixture
def access(store: OrderStore) -> AccessStore:
    return AccessStore(store.db)


async def test_a_created_key_is_stored_only_as_its_hash(access: AccessStore) -> None:
    created = await access.create_key(
        merchant="default", role=Role.shop, name="shop-backend", by=ADMIN, at=T0
    )
    key = created.key
    assert key.startswith("cpe_") and len(key) == 4 + 12 + 1 + 43
    assert parse_api_key(key) == created.api_key.key_id
    async with access.db.connect() as conn:
        rows = (await conn.execute(select(api_keys))).mappings().all()
    assert len(rows) == 1
    stored = dict(rows[0])
    assert stored["key_hash"] == key_hash(key)
    assert key not in {str(v) for v in stored.values()}
    secret = key.rsplit("_", 1)[1]
    assert not any(secret in str(v) for v in stored.values())
    found = await access.authenticate(key, at=T0)
    assert found is not None
    assert (found.name, found.merchant, found.role) == ("shop-backend", "default", Role.shop)


async def test_wrong_malformed_and_unknown_keys_do_not_authenticate(access: AccessStore) -> None:
    created = await access.create_key(merchant="default", role=Role.viewer, name="v", by=ADMIN)
    key = created.key
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert await access.authenticate(tampered) is None
    assert await access.authenticate("cpe_000000000000_" + "a" * 43) is None
    for malformed in ("", "dev-api-key", key + "x", key.replace("cpe_", "cpx_"), key[:-1]):
        assert await access.authenticate(malformed) is None


async def test_revoked_and_expired_keys_stop_working(access: AccessStore) -> None:
    revoked = await access.create_key(merchant="default", role=Role.operator, name="r", by=ADMIN)
    expiring = await access.create_key(
        merchant="default",
        role=Role.shop,
        name="e",
        by=ADMIN,
        at=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    assert await access.authenticate(expiring.key, at=T0 + timedelta(minutes=59)) is not None
    assert await access.authenticate(expiring.key, at=T0 + timedelta(hours=1)) is None
    record = await access.revoke_key(revoked.api_key.key_id, by=ADMIN)
    assert record.revoked_at is not None
    assert await access.authenticate(revoked.key) is None
    # Revoking twice keeps the first time; an unknown id is refused.
    again = await access.revoke_key(revoked.api_key.key_id, by=ADMIN)
    assert again.revoked_at == record.revoked_at
    with pytest.raises(KeyNotFound):
        await access.revoke_key("ffffffffffff", by=ADMIN)
    listed = {k.key_id for k in await access.list_keys()}
    assert revoked.api_key.key_id not in listed
    everything = {k.key_id for k in await access.list_keys(include_revoked=True)}
    assert revoked.api_key.key_id in everything


async def test_rotation_now_and_with_a_grace_period(access: AccessStore) -> None:
    old = await access.create_key(merchant="default", role=Role.shop, name="rot", by=ADMIN, at=T0)
    new = await access.rotate_key(old.api_key.key_id, by=ADMIN, at=T0)
    assert new.key != old.key
    assert (new.api_key.name, new.api_key.role, new.api_key.replaces) == (
        "rot",
        Role.shop,
        old.api_key.key_id,
    )
    assert await access.authenticate(old.key, at=T0) is None
    assert await access.authenticate(new.key, at=T0) is not None
    graced = await access.rotate_key(new.api_key.key_id, by=ADMIN, grace=timedelta(hours=24), at=T0)
    assert await access.authenticate(new.key, at=T0 + timedelta(hours=23)) is not None
    assert await access.authenticate(new.key, at=T0 + timedelta(hours=24)) is None
    assert await access.authenticate(graced.key, at=T0 + timedelta(hours=25)) is not None
    with pytest.raises(KeyNotFound):
        await access.rotate_key(old.api_key.key_id, by=ADMIN, at=T0)


async def test_keys_need_a_known_merchant(access: AccessStore) -> None:
    with pytest.raises(UnknownMerchant):
        await access.create_key(merchant="acme", role=Role.shop, name="x", by=ADMIN)
    merchant = await access.add_merchant("acme", by=ADMIN, app_id="app-acme")
    assert merchant.name == "acme" and merchant.credentials == "none"
    with pytest.raises(MerchantExists):
        await access.add_merchant("acme", by=ADMIN)
    created = await access.create_key(merchant="acme", role=Role.shop, name="x", by=ADMIN)
    assert created.api_key.merchant == "acme"
    assert [k.key_id for k in await access.list_keys(merchant="acme")] == [created.api_key.key_id]
    assert [m.name for m in await access.list_merchants()] == ["acme", "default"]
    await access.disable_merchant("acme", by=ADMIN)
    with pytest.raises(UnknownMerchant):
        await access.create_key(merchant="acme", role=Role.shop, name="y", by=ADMIN)


async def test_last_use_is_recorded(access: AccessStore) -> None:
    created = await access.create_key(merchant="default", role=Role.viewer, name="u", by=ADMIN)
    assert created.api_key.last_used_at is None
    await access.touch_key(created.api_key.key_id, at=T0)
    found = await access.get_key(created.api_key.key_id)
    assert found is not None and found.last_used_at == T0


async def test_every_change_is_audited_in_order(access: AccessStore) -> None:
    ops = Actor("key:ops (abcdefabcdef)", key_id="abcdefabcdef", merchant="default")
    created = await access.create_key(merchant="default", role=Role.shop, name="a", by=ADMIN, at=T0)
    await access.rotate_key(created.api_key.key_id, by=ADMIN, at=T0 + timedelta(seconds=1))
    await access.revoke_key(created.api_key.key_id, by=ops, at=T0 + timedelta(seconds=2))
    await access.add_merchant("shopb", by=ADMIN, at=T0 + timedelta(seconds=3))
    events = await access.list_audit()
    assert [e.action for e in events] == ["merchant.add", "key.revoke", "key.rotate", "key.create"]
    assert events[1].actor == ops.name and events[1].key_id == "abcdefabcdef"
    assert events[3].target == created.api_key.key_id
    assert all(created.key not in str(e.model_dump()) for e in events)
    keys_only = await access.list_audit(AuditFilter(action="key."))
    assert [e.action for e in keys_only] == ["key.revoke", "key.rotate", "key.create"]
    window = await access.list_audit(
        AuditFilter(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    )
    assert [e.action for e in window] == ["key.revoke", "key.rotate"]
    assert [e.action for e in await access.list_audit(AuditFilter(merchant="shopb"))] == [
        "merchant.add"
    ]
    assert len(await access.list_audit(AuditFilter(limit=1))) == 1
