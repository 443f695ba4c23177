"""Models of access control: merchants, API keys with roles, audit events (docs/security.md).

Pure: no database code, so the gateway, the CLI and tests import it freely. The key format and
its hash live here too (``new_api_key``, ``key_hash``, ``parse_api_key``).

An API key looks like ``cpe_<key id>_<secret>``: the key id (12 lowercase hex characters) is
public and names the key in lists and the audit trail; the secret is 32 random bytes in
base64url. The store keeps only the SHA-256 of the whole key: a key with 256 bits of entropy
needs no slow hash, and nobody can recover it from the database.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

DEFAULT_MERCHANT = "default"
KEY_PREFIX = "cpe_"
KEY_ID_CHARS = 12
_KEY = re.compile(
    rf"^{KEY_PREFIX}(?P<key_id>[0-9a-f]{{{KEY_ID_CHARS}}})_(?P<secret>[A-Za-z0-9_-]{{43}})$"
)
MERCHANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"

MerchantName = Annotated[str, StringConstraints(pattern=MERCHANT_PATTERN)]
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\s:]")]


class Role(StrEnum):
    """What a key may do. Each role includes the ones before it: viewer ⊂ shop ⊂ operator."""

    viewer = "viewer"
    shop = "shop"
    operator = "operator"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.viewer: 1, Role.shop: 2, Role.operator: 3}


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )


class ApiKey(Model):
    """One API key as the store keeps it (never the key itself)."""

    key_id: str
    name: str
    merchant: str
    role: Role
    created_at: datetime
    created_by: str = ""
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    replaces: str | None = None

    def usable(self, now: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at

    @property
    def actor(self) -> str:
        """How the audit trail and the order's timeline name whoever used this key."""
        return f"key:{self.name} ({self.key_id})"


class CreatedKey(Model):
    """The answer of ``keys create`` / ``keys rotate``: the key, shown once, and its record."""

    key: str
    api_key: ApiKey


class Merchant(Model):
    """A Cotpay account. Secrets are never in this model: see ``MerchantCredentials``."""

    name: str
    app_id: str = ""
    base_url: str = ""
    envelope: str = "encrypted"
    credentials: str = Field(default="", description="'encrypted', 'files' or 'environment'")
    access_token_file: str | None = None
    private_key_file: str | None = None
    public_key_file: str | None = None
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None = None


class AuditEvent(Model):
    """Who did what, with which key, when (docs/security.md, "Audit")."""

    id: int | None = None
    time: datetime
    actor: str
    key_id: str | None = None
    merchant: str | None = None
    action: str
    target: str = ""
    detail: str = ""
    data: dict[str, Any] | None = None


class AuditFilter(Model):
    since: datetime | None = None
    until: datetime | None = None
    merchant: str | None = None
    action: str | None = None
    """An exact action, or a prefix ending in ``.`` (``key.`` = every key event)."""
    key_id: str | None = None
    limit: int = Field(default=100, ge=1, le=10_000)


def new_api_key() -> tuple[str, str]:
    """A fresh key and its id: ``("cpe_<id>_<secret>", "<id>")``."""
    key_id = secrets.token_hex(KEY_ID_CHARS // 2)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id


def parse_api_key(candidate: str) -> str | None:
    """The key id of a well-formed key, else None (malformed: 401 without a database read)."""
    match = _KEY.match(candidate)
    return match.group("key_id") if match else None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
