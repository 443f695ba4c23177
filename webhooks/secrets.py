"""Signing secrets: made, sealed at rest, and used to sign (docs/webhooks.md, Signatures).

A secret is ``whsec_`` + base64 of 32 random bytes, the Standard Webhooks format every library
reads. It is shown once (when the endpoint is made or its secret rotated) and stored sealed with
the payload codec's key ring (``ESCROW_CODEC_KEYS``, runtime/codec.py): AES-256-GCM under the
ring's current key, the endpoint id as associated data, so a sealed secret copied to another
endpoint does not open. Without a key ring (development) it is stored as it is. Neither the
secret nor a signature is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from standardwebhooks.webhooks import Webhook

from runtime.codec import KeyRing

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
_PLAIN = "plain:"
_SEALED = "aesgcm:"
_NONCE = 12


class SecretUnavailable(RuntimeError):
    """A stored secret that cannot be opened (its key is not in the ring); no key material in
    the message."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


class SecretBox:
    """Seals and opens stored secrets with a key ring (None: stored as they are)."""

    def __init__(self, ring: KeyRing | None) -> None:
        self.ring = ring

    @staticmethod
    def _aad(endpoint_id: str) -> bytes:
        return f"cotpay-escrow/webhook-secret/{endpoint_id}".encode()

    def seal(self, secret: str, endpoint_id: str) -> str:
        if self.ring is None:
            return _PLAIN + secret
        key_id = self.ring.current
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self.ring.keys[key_id]).encrypt(
            nonce, secret.encode(), self._aad(endpoint_id)
        )
        return f"{_SEALED}{key_id}:" + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, endpoint_id: str) -> str:
        if stored.startswith(_PLAIN):
            return stored[len(_PLAIN) :]
        if not stored.startswith(_SEALED):
            raise SecretUnavailable(f"endpoint {endpoint_id}: unknown secret format")
        key_id, _, encoded = stored[len(_SEALED) :].partition(":")
        if self.ring is None or key_id not in self.ring.keys:
            raise SecretUnavailable(
                f"endpoint {endpoint_id}: its secret is sealed with key {key_id!r}, which is not"
                " in ESCROW_CODEC_KEYS"
            )
        try:
            raw = base64.b64decode(encoded, validate=True)
            plain = AESGCM(self.ring.keys[key_id]).decrypt(
                raw[:_NONCE], raw[_NONCE:], self._aad(endpoint_id)
            )
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretUnavailable(f"endpoint {endpoint_id}: its secret does not open") from None
        return plain.decode()


def sign(msg_id: str, timestamp: datetime, body: str, secrets: list[str]) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret, space-separated (the
    current secret first; during a rotation the previous one too)."""
    at = timestamp.astimezone(UTC)
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets)
