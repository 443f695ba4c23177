"""Cotpay's request/response envelope (docs/cotpay-protocol.md, "The envelope").

ASSUMPTION (the one module to change if Cotpay differs): Cotpay's page says payloads are
encrypted but not how. We implement the security envelope its payment partner PayME publishes:

* ``k``: a fresh random ASCII passphrase per message (32 chars here, at least 16 accepted).
* ``x-api-key``: base64(RSA-OAEP(SHA-1, MGF1-SHA-1)(k)) under the receiver's public key
  (Cotpay's key for requests, the merchant's key for responses).
* ``x-api-action``: AES(path, k); body ``{"x-api-message": AES(json(payload), k)}`` where AES is
  the OpenSSL/CryptoJS passphrase format: base64("Salted__" || salt(8) || AES-256-CBC-PKCS7)
  with key and IV from EVP_BytesToKey(MD5, 1 round, k, salt).
* ``x-api-validate``: md5_hex(x-api-action || METHOD || access_token || x-api-message || k).
* ``Authorization: <access_token>``, ``x-api-client: <app_id>``.

Responses use the same envelope, with the same path, method and access token, the key sealed
under the merchant's public key. ``PlainEnvelope`` is the switch (``COTPAY_ENVELOPE=plain``) for a
Cotpay that turns out not to encrypt: the payload travels as plain JSON and the path as a
plain ``x-api-action`` header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

H_KEY = "x-api-key"
H_ACTION = "x-api-action"
H_VALIDATE = "x-api-validate"
H_CLIENT = "x-api-client"
H_AUTH = "authorization"
BODY_FIELD = "x-api-message"

_SALTED = b"Salted__"
_PASSPHRASE_ALPHABET = string.ascii_letters + string.digits
MIN_PASSPHRASE = 16


class EnvelopeError(Exception):
    """An envelope that cannot be opened. ``reason`` is a stable short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --- primitives (CryptoJS / OpenSSL compatible) --------------------------------------------


def new_passphrase(length: int = 32) -> str:
    return "".join(secrets.choice(_PASSPHRASE_ALPHABET) for _ in range(length))


def evp_bytes_to_key(passphrase: bytes, salt: bytes, key_len: int = 32, iv_len: int = 16) -> bytes:
    """OpenSSL EVP_BytesToKey with MD5 and one round, as CryptoJS uses it."""
    out = b""
    block = b""
    while len(out) < key_len + iv_len:
        block = hashlib.md5(block + passphrase + salt).digest()  # noqa: S324 - the wire format
        out += block
    return out[: key_len + iv_len]


def aes_encrypt(text: str, passphrase: str, *, salt: bytes | None = None) -> str:
    """CryptoJS ``AES.encrypt(text, passphrase).toString()``."""
    salt = salt if salt is not None else secrets.token_bytes(8)
    if len(salt) != 8:
        raise ValueError("salt must be 8 bytes")
    material = evp_bytes_to_key(passphrase.encode(), salt)
    key, iv = material[:32], material[32:]
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode("utf-8")) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(_SALTED + salt + enc.update(data) + enc.finalize()).decode("ascii")


def aes_decrypt(token: str, passphrase: str) -> str:
    """CryptoJS ``AES.decrypt(token, passphrase).toString(Utf8)``; raises EnvelopeError."""
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("bad_ciphertext", "not base64") from exc
    if len(raw) < 32 or raw[:8] != _SALTED or (len(raw) - 16) % 16:
        raise EnvelopeError("bad_ciphertext", "not an OpenSSL salted AES-256-CBC block")
    material = evp_bytes_to_key(passphrase.encode(), raw[8:16])
    dec = Cipher(algorithms.AES(material[:32]), modes.CBC(material[32:])).decryptor()
    padded = dec.update(raw[16:]) + dec.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        return plain.decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError("bad_ciphertext", "wrong key or corrupted message") from exc


def rsa_encrypt(passphrase: str, public_key: rsa.RSAPublicKey) -> str:
    """node-forge ``publicKey.encrypt(k, 'RSA-OAEP')`` (SHA-1, MGF1-SHA-1), base64."""
    oaep = asym_padding.OAEP(
        mgf=asym_padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303 - the wire format
        algorithm=hashes.SHA1(),  # noqa: S303
        label=None,
    )
    return base64.b64encode(public_key.encrypt(passphrase.encode("ascii"), oaep)).decode("ascii")


def rsa_decrypt(token: str, private_key: rsa.RSAPrivateKey) -> str:
    oaep = asym_padding.OAEP(
        mgf=asym_padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303
        algorithm=hashes.SHA1(),  # noqa: S303
        label=None,
    )
    try:
        raw = private_key.decrypt(base64.b64decode(token, validate=True), oaep)
        passphrase = raw.decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise EnvelopeError("bad_key", "x-api-key does not decrypt with our private key") from exc
    if len(passphrase) < MIN_PASSPHRASE:
        raise EnvelopeError("bad_key", "passphrase shorter than 16 characters")
    return passphrase


def validate_digest(action: str, method: str, access_token: str, message: str, k: str) -> str:
    text = action + method.upper() + access_token + message + k
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the wire format


# --- keys ----------------------------------------------------------------------------------


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def generate_private_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- envelopes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Opened:
    path: str
    payload: Any
    access_token: str
    app_id: str


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise EnvelopeError("missing_header", f"header {name} is missing")


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError("bad_json", "body is not JSON") from exc


def dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class Envelope(Protocol):
    mode: str

    def seal(
        self,
        payload: Any,
        *,
        path: str,
        access_token: str,
        app_id: str,
        method: str = "POST",
    ) -> Sealed: ...

    def open(self, headers: Mapping[str, str], body: bytes, *, method: str = "POST") -> Opened: ...


class EncryptedEnvelope:
    """Seals for the holder of ``peer_public_key``, opens with ``own_private_key``."""

    mode = "encrypted"

    def __init__(
        self,
        *,
        peer_public_key: rsa.RSAPublicKey | None,
        own_private_key: rsa.RSAPrivateKey | None,
    ) -> None:
        self._peer = peer_public_key
        self._own = own_private_key

    def seal(
        self,
        payload: Any,
        *,
        path: str,
        access_token: str,
        app_id: str,
        method: str = "POST",
        passphrase: str | None = None,
    ) -> Sealed:
        if self._peer is None:
            raise ValueError("no public key to seal for")
        k = passphrase or new_passphrase()
        action = aes_encrypt(path, k)
        message = aes_encrypt(dumps(payload), k)
        headers = {
            "Content-Type": "application/json",
            "Authorization": access_token,
            H_CLIENT: app_id,
            H_KEY: rsa_encrypt(k, self._peer),
            H_ACTION: action,
            H_VALIDATE: validate_digest(action, method, access_token, message, k),
        }
        return Sealed(headers, json.dumps({BODY_FIELD: message}).encode())

    def open(self, headers: Mapping[str, str], body: bytes, *, method: str = "POST") -> Opened:
        if self._own is None:
            raise ValueError("no private key to open with")
        key_token = _header(headers, H_KEY)
        action = _header(headers, H_ACTION)
        validate = _header(headers, H_VALIDATE)
        access_token = _optional(headers, H_AUTH)
        app_id = _optional(headers, H_CLIENT)
        outer = _json_body(body)
        if not isinstance(outer, dict) or not isinstance(outer.get(BODY_FIELD), str):
            raise EnvelopeError("missing_message", f"body has no {BODY_FIELD} string")
        message: str = outer[BODY_FIELD]
        k = rsa_decrypt(key_token, self._own)
        expected = validate_digest(action, method, access_token, message, k)
        if not hmac.compare_digest(expected, validate.lower()):
            raise EnvelopeError("bad_validate", "x-api-validate does not match")
        path = aes_decrypt(action, k)
        payload = _json_body(aes_decrypt(message, k).encode("utf-8"))
        return Opened(path=path, payload=payload, access_token=access_token, app_id=app_id)


class PlainEnvelope:
    """No encryption: JSON body, path in ``x-api-action``, token in ``Authorization``."""

    mode = "plain"

    def seal(
        self,
        payload: Any,
        *,
        path: str,
        access_token: str,
        app_id: str,
        method: str = "POST",
    ) -> Sealed:
        headers = {
            "Content-Type": "application/json",
            "Authorization": access_token,
            H_CLIENT: app_id,
            H_ACTION: path,
        }
        return Sealed(headers, dumps(payload).encode("utf-8"))

    def open(self, headers: Mapping[str, str], body: bytes, *, method: str = "POST") -> Opened:
        return Opened(
            path=_optional(headers, H_ACTION),
            payload=_json_body(body),
            access_token=_optional(headers, H_AUTH),
            app_id=_optional(headers, H_CLIENT),
        )


def _optional(headers: Mapping[str, str], name: str) -> str:
    try:
        return _header(headers, name)
    except EnvelopeError:
        return ""


def is_enveloped(headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a message looks sealed (used where both plain and sealed are accepted)."""
    if _optional(headers, H_KEY):
        return True
    try:
        outer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(outer, dict) and set(outer) == {BODY_FIELD}
