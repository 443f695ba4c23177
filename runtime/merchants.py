"""Merchants: the Cotpay account each order calls Cotpay with (docs/security.md, "Merchants").

The **default** merchant is today's ``COTPAY_*`` settings: nothing changes for a deployment
with one merchant. Every other merchant is a row of the store's ``merchants`` table (added by
``cotpay-escrow merchants add``) with its base URL, app id and envelope, and its secrets (the
access token, Cotpay's public key for it, its own private key) either

- **sealed** in the row: AES-256-GCM with the payload key ring of ``runtime/codec.py`` (the
  current key seals, any key of the ring opens; the merchant's name is the associated data, so a
  sealed blob cannot be moved to another merchant's row); or
- **files** the worker and the gateway read when they need them (``access_token_file`` holds the
  token, or ``COTPAY_ACCESS_TOKEN=...`` lines as the sandbox's ``credentials.env`` does).

``MerchantDirectory`` resolves a name to a ``MerchantAccount`` (cached for a minute);
``MerchantClients`` keeps one ``CotpayClient`` per merchant for the worker's activities.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from cotpay.client import CotpayClient
from cotpay.envelope import (
    EncryptedEnvelope,
    Envelope,
    PlainEnvelope,
    load_private_key,
    load_public_key,
)
from cotpay.settings import CotpaySettings, read_env_file
from runtime.codec import NONCE_BYTES, CodecError, KeyRing
from store.access import AccessStore
from workflows.models import DEFAULT_MERCHANT

SEALED_PREFIX = "sealed-v1"
_CACHE_SECONDS = 60.0


class MerchantUnavailable(RuntimeError):
    """A merchant whose credentials cannot be used (unknown, disabled, unreadable)."""


def seal_credentials(ring: KeyRing, merchant: str, secrets: dict[str, str]) -> str:
    """``sealed-v1:<key id>:<base64(nonce || AES-GCM(json))>``."""
    key_id = ring.current
    nonce = os.urandom(NONCE_BYTES)
    aad = f"merchant:{merchant}".encode()
    sealed = AESGCM(ring.keys[key_id]).encrypt(nonce, json.dumps(secrets).encode(), aad)
    return f"{SEALED_PREFIX}:{key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def open_credentials(ring: KeyRing | None, merchant: str, sealed: str) -> dict[str, str]:
    prefix, _, rest = sealed.partition(":")
    key_id, _, blob = rest.partition(":")
    if prefix != SEALED_PREFIX or not key_id or not blob:
        raise CodecError(f"merchant {merchant!r}: sealed credentials in an unknown format")
    if ring is None or key_id not in ring.keys:
        raise CodecError(
            f"merchant {merchant!r}: credentials sealed with key {key_id!r}, which is not in the "
            "key ring (ESCROW_CODEC_KEYS / ESCROW_CODEC_KEYS_FILE)"
        )
    raw = base64.b64decode(blob)
    try:
        plain = AESGCM(ring.keys[key_id]).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"merchant:{merchant}".encode()
        )
    except InvalidTag:
        raise CodecError(f"merchant {merchant!r}: sealed credentials fail authentication") from None
    values = json.loads(plain)
    assert isinstance(values, dict)
    return {str(k): str(v) for k, v in values.items()}


def read_token_file(path: Path) -> str:
    """The token of a file holding it alone, or ``COTPAY_ACCESS_TOKEN=`` of an env file."""
    text = path.read_text(encoding="utf-8")
    if "=" in text:
        token = read_env_file(path).get("COTPAY_ACCESS_TOKEN", "")
        if token:
            return token
    return text.strip()


@dataclass(frozen=True)
class MerchantAccount:
    name: str
    settings: CotpaySettings
    cotpay_public_pem: bytes | None = None
    merchant_private_pem: bytes | None = None

    def envelope(self) -> Envelope:
        if self.settings.envelope == "plain":
            return PlainEnvelope()
        if self.cotpay_public_pem is None or self.merchant_private_pem is None:
            raise MerchantUnavailable(
                f"merchant {self.name!r}: the encrypted envelope needs Cotpay's public key and "
                "the merchant's private key"
            )
        return EncryptedEnvelope(
            peer_public_key=load_public_key(self.cotpay_public_pem),
            own_private_key=load_private_key(self.merchant_private_pem),
        )

    def private_key(self) -> rsa.RSAPrivateKey | None:
        """The key that opens this merchant's sealed IPNs (None: it has none)."""
        if self.merchant_private_pem is None:
            return None
        return load_private_key(self.merchant_private_pem)


class MerchantDirectory:
    """Merchant name → ``MerchantAccount``: the default from ``COTPAY_*``, others from the
    store."""

    def __init__(
        self,
        access: AccessStore | None,
        *,
        default: CotpaySettings,
        ring: KeyRing | None,
        cache_seconds: float = _CACHE_SECONDS,
    ) -> None:
        self.access = access
        self.default = default
        self.ring = ring
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, MerchantAccount]] = {}

    async def account(self, name: str) -> MerchantAccount:
        """Raises ``MerchantUnavailable`` (unknown, disabled, unreadable credentials) or the
        store's ``StoreUnavailable``."""
        if name == DEFAULT_MERCHANT:
            return self._default_account()
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        account = await self._load(name)
        self._cache[name] = (now + self.cache_seconds, account)
        return account

    def _default_account(self) -> MerchantAccount:
        settings = self.default
        return MerchantAccount(
            name=DEFAULT_MERCHANT,
            settings=settings,
            cotpay_public_pem=_read(settings.public_key_file),
            merchant_private_pem=_read(settings.private_key_file),
        )

    async def _load(self, name: str) -> MerchantAccount:
        if self.access is None:
            raise MerchantUnavailable(f"merchant {name!r}: no merchant store configured")
        row = await self.access.merchant_secrets(name)
        if row is None:
            raise MerchantUnavailable(f"merchant {name!r} is unknown or disabled")
        try:
            if row.get("sealed_credentials"):
                secrets = open_credentials(self.ring, name, row["sealed_credentials"])
                token = secrets.get("accessToken", "")
                public = secrets.get("cotpayPublicKey", "").encode() or None
                private = secrets.get("merchantPrivateKey", "").encode() or None
            else:
                token_file = row.get("access_token_file")
                token = read_token_file(Path(token_file)) if token_file else ""
                public = _read(_path(row.get("public_key_file")))
                private = _read(_path(row.get("private_key_file")))
        except (CodecError, OSError, ValueError) as exc:
            raise MerchantUnavailable(f"merchant {name!r}: {exc}") from exc
        settings = self.default.model_copy(
            update={
                "base_url": row.get("base_url") or self.default.base_url,
                "app_id": row.get("app_id") or "",
                "access_token": SecretStr(token),
                "envelope": row.get("envelope") or "encrypted",
                "public_key_file": None,
                "private_key_file": None,
            }
        )
        return MerchantAccount(name, settings, public, private)

    def forget(self) -> None:
        self._cache.clear()


class MerchantClients:
    """One ``CotpayClient`` per merchant (the worker's activities); the default merchant's is
    the worker's own client."""

    def __init__(self, default: CotpayClient, directory: MerchantDirectory | None) -> None:
        self.default = default
        self.directory = directory
        self._clients: dict[str, CotpayClient] = {}

    async def client(self, merchant: str) -> CotpayClient:
        if merchant == DEFAULT_MERCHANT:
            return self.default
        existing = self._clients.get(merchant)
        if existing is not None:
            return existing
        if self.directory is None:
            raise MerchantUnavailable(f"merchant {merchant!r}: no merchant store configured")
        account = await self.directory.account(merchant)
        client = CotpayClient(account.settings, envelope=account.envelope())
        self._clients[merchant] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _path(value: object) -> Path | None:
    return Path(str(value)) if value else None


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None
