"""Payload encryption: an AES-256-GCM ``PayloadCodec`` over a key ring, and the data converter.

Keys, rotation and the codec server: docs/deployment.md (section 3).

Every client, worker, test environment and replayer builds its converter with
``escrow_data_converter(CodecSettings())``. With no keys configured that is the plain pydantic
converter (the development default); production sets ``ESCROW_CODEC_KEYS``.

Wire format of an encrypted payload: metadata ``encoding: binary/encrypted`` and
``encryption-key-id: <id>``; data = nonce(12) || AES-256-GCM(serialized inner Payload), with
the key id as associated data. The first key of the ring encodes; every key decodes, so
histories written before a rotation stay readable. Payloads without that encoding pass through
decode unchanged (histories from before encryption was switched on).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from workflows.pseudonym import search_id_hex_salt

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_SEARCH_SALT_LABEL = b"cotpay-escrow/search-id/v1"


class CodecError(ValueError):
    """A payload or key that cannot be used; the message never contains key material."""


class CodecSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESCROW_CODEC_", extra="ignore", populate_by_name=True
    )

    keys: SecretStr | None = None
    keys_file: Path | None = None
    token: SecretStr | None = None
    cors_origin: str = "http://127.0.0.1:8233"
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    pseudonymize_search: bool = Field(default=False, validation_alias="ESCROW_PSEUDONYMIZE_SEARCH")
    search_key: SecretStr | None = Field(default=None, validation_alias="ESCROW_SEARCH_KEY")

    def key_spec(self) -> str:
        """The key ring text: ``ESCROW_CODEC_KEYS`` first, else the file's content, else ""."""
        if self.keys is not None and self.keys.get_secret_value().strip():
            return self.keys.get_secret_value()
        if self.keys_file is not None:
            return self.keys_file.read_text(encoding="utf-8")
        return ""

    def key_ring(self) -> KeyRing | None:
        spec = self.key_spec()
        return KeyRing.parse(spec) if spec.strip() else None

    def search_salt_hex(self) -> str | None:
        """The salt for ``workflows.pseudonym.search_id`` when pseudonymized search is on."""
        if not self.pseudonymize_search:
            return None
        if self.search_key is None or not self.search_key.get_secret_value():
            raise CodecError("ESCROW_PSEUDONYMIZE_SEARCH=true needs ESCROW_SEARCH_KEY")
        return search_salt(self.search_key.get_secret_value().encode("utf-8")).hex()

    def search_value(self, cotpay_id: str) -> str:
        """What ``SellerId``/``BuyerId`` hold for ``cotpay_id``: to search by phone number."""
        salt = self.search_salt_hex()
        return cotpay_id.strip() if salt is None else search_id_hex_salt(cotpay_id, salt)


def search_salt(search_key: bytes) -> bytes:
    """Derive the pseudonym salt so the configured key itself never enters a workflow input."""
    return hmac.new(search_key, _SEARCH_SALT_LABEL, hashlib.sha256).digest()


def generate_key() -> str:
    """A fresh key in the ``ESCROW_CODEC_KEYS`` format (base64 of 32 random bytes)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """Known keys by id; ``current`` encodes, all decode."""

    keys: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise CodecError(f"current key id {self.current!r} is not in the key ring")
        for key_id, key in self.keys.items():
            if not _KEY_ID.match(key_id):
                raise CodecError(f"invalid key id {key_id!r}: use 1-64 of [A-Za-z0-9._-]")
            if len(key) != KEY_BYTES:
                raise CodecError(f"key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Parse ``id1:base64key,id2:base64key`` (commas or newlines; ``#`` comments)."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for raw_line in spec.splitlines():
            line = raw_line.split("#", 1)[0]
            for item in line.split(","):
                entry = item.strip()
                if not entry:
                    continue
                key_id, sep, encoded = entry.partition(":")
                key_id = key_id.strip()
                if not sep or not key_id:
                    raise CodecError("key ring entries look like <id>:<base64 key>")
                if key_id in keys:
                    raise CodecError(f"key id {key_id!r} appears twice")
                try:
                    keys[key_id] = base64.b64decode(encoded.strip(), validate=True)
                except (binascii.Error, ValueError):
                    raise CodecError(f"key {key_id!r} is not valid base64") from None
                order.append(key_id)
        if not order:
            raise CodecError("the key ring is empty")
        return cls(keys=keys, current=order[0])


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the serialized payload; see the module docstring for the format."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    @property
    def current_key_id(self) -> str:
        return self._ring.current

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._ring.current
        cipher = self._ciphers[key_id]
        aad = key_id.encode("ascii")
        out = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), aad)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: aad},
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding", b"") != ENCODING:
                out.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("ascii", "replace")
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecError(f"payload encrypted with unknown key id {key_id!r}")
            if len(payload.data) <= NONCE_BYTES:
                raise CodecError(f"encrypted payload too short (key id {key_id!r})")
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                plain = cipher.decrypt(nonce, sealed, key_id.encode("ascii"))
            except InvalidTag:
                raise CodecError(
                    f"payload failed authentication (key id {key_id!r}): tampered or wrong key"
                ) from None
            inner = Payload()
            inner.ParseFromString(plain)
            out.append(inner)
        return out


class NoKeyCodec(PayloadCodec):
    """Without a key ring: payloads pass through, and an encrypted one fails with a clear hint."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for payload in payloads:
            if payload.metadata.get("encoding", b"") == ENCODING:
                key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("ascii", "replace")
                raise CodecError(
                    f"the order's data is encrypted (key id {key_id!r}) and no key ring is "
                    "configured: set ESCROW_CODEC_KEYS_FILE (for `cotpay-escrow run`: "
                    "<data-dir>/codec.keys) or ESCROW_CODEC_KEYS"
                )
        return list(payloads)


def escrow_data_converter(settings: CodecSettings | None = None) -> DataConverter:
    """The converter for every client, worker, test environment and replayer.

    Pydantic JSON, plus (when keys are configured) the encryption codec and a failure converter
    that moves failure messages and stack traces into encoded attributes. Without keys, plain
    pydantic JSON whose decoding refuses encrypted payloads with a hint (``NoKeyCodec``).
    """
    ring = (settings or CodecSettings()).key_ring()
    if ring is None:
        return dataclasses.replace(pydantic_data_converter, payload_codec=NoKeyCodec())
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
