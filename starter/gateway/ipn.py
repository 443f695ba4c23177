"""Reading an IPN request: the body, plain JSON or sealed in Cotpay's envelope, into ``IpnBody``.

A sealed IPN is opened with the merchant's private key (``COTPAY_PRIVATE_KEY_FILE``), the key
that opens Cotpay's API answers too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from cotpay.envelope import EncryptedEnvelope, EnvelopeError, is_enveloped, load_private_key
from cotpay.ipn import IpnBody, IpnParseError, parse_ipn
from cotpay.settings import CotpaySettings


@dataclass(frozen=True)
class IpnRejected(Exception):
    status: int
    code: str
    message: str


def merchant_key(settings: CotpaySettings) -> rsa.RSAPrivateKey | None:
    path = settings.private_key_file
    if path is None or not path.is_file():
        return None
    return load_private_key(path.read_bytes())


def read_ipn(headers: Mapping[str, str], body: bytes, key: rsa.RSAPrivateKey | None) -> IpnBody:
    """Raises ``IpnRejected`` (400 for a malformed body, 500 when no key can open it)."""
    if is_enveloped(headers, body):
        if key is None:
            raise IpnRejected(500, "ipn_key_missing", "no merchant private key to open the IPN")
        try:
            payload = (
                EncryptedEnvelope(peer_public_key=None, own_private_key=key)
                .open(headers, body)
                .payload
            )
        except (EnvelopeError, ValueError, TypeError) as exc:
            raise IpnRejected(400, "invalid_ipn", "the IPN envelope cannot be opened") from exc
    else:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IpnRejected(400, "invalid_ipn", "the IPN body is not JSON") from exc
    try:
        return parse_ipn(payload)
    except IpnParseError as exc:
        raise IpnRejected(400, "invalid_ipn", f"the IPN body is not valid: {exc}") from exc
