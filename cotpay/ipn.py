"""Cotpay IPN callbacks (docs/cotpay-protocol.md; the IPN URL check: docs/http-api.md).

ASSUMPTION (the one parser to change if Cotpay differs): Cotpay's IPN body is undocumented. We
accept a JSON object, plain or sealed in the envelope (``cotpay/envelope.py``), with
``idOrder``, ``status``, ``code``, ``message``, ``amount``, ``transactionId`` and ``time``.
Unknown statuses are kept as they are (never dropped) and unknown extra fields are preserved in
``extra``.

Each order gets one URL per step, signed so that a forged callback is refused:
``{public_url}/ipn/{orderRef}/{step}?sig=base64url(HMAC-SHA256(secret, "{orderRef}:{step}"))``.

With several merchants, an order of merchant ``m`` (any but the deployment's first) gets
``{public_url}/ipn/{orderRef}/{step}?m={m}&sig=base64url(HMAC-SHA256(merchant_secret(secret, m),
"{m}:{orderRef}:{step}"))``: the signature covers the merchant, so one merchant's URL cannot be
turned into another's, and each merchant has its own key derived from the one secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class IpnStep(StrEnum):
    CREATE = "create"
    VERIFY = "verify"
    PAYMENT = "payment"
    RETURN = "return"


class IpnStatus(StrEnum):
    HOLDING = "HOLDING"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    PAID_OUT = "PAID_OUT"
    PAYOUT_FAILED = "PAYOUT_FAILED"
    REFUNDED = "REFUNDED"
    RETURN_REJECTED = "RETURN_REJECTED"


KNOWN_STATUSES = frozenset(s.value for s in IpnStatus)
MAX_IPN_URL = 255


class IpnBody(BaseModel):
    """One IPN as Cotpay sends it. ``status`` stays a string so unknown statuses survive."""

    model_config = ConfigDict(extra="allow")

    idOrder: int | None = None
    status: str = Field(min_length=1, max_length=64)
    code: int | None = None
    message: str | None = Field(default=None, max_length=1000)
    amount: int | None = None
    transactionId: str | None = Field(default=None, max_length=128)
    time: datetime | None = None

    @field_validator("status")
    @classmethod
    def _upper(cls, value: str) -> str:
        status = value.strip().upper()
        if not status:
            raise ValueError("status is blank")
        return status

    @property
    def known(self) -> bool:
        return self.status in KNOWN_STATUSES

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class IpnParseError(ValueError):
    pass


def parse_ipn(payload: Any) -> IpnBody:
    """Parse an already-decoded (plain or opened) IPN payload."""
    if not isinstance(payload, dict):
        raise IpnParseError("IPN body must be a JSON object")
    try:
        return IpnBody.model_validate(payload)
    except ValidationError as exc:
        raise IpnParseError(str(exc.errors(include_url=False, include_input=False))) from exc


def merchant_secret(secret: str, merchant: str) -> str:
    """The IPN key of one merchant, derived from the deployment's secret."""
    label = f"cotpay-escrow/ipn/merchant/{merchant}".encode()
    return hmac.new(secret.encode(), label, hashlib.sha256).hexdigest()


def ipn_signature(secret: str, order_ref: str, step: str, merchant: str | None = None) -> str:
    """``merchant=None``: the single-merchant signature (every URL handed out before merchants
    existed keeps verifying)."""
    if merchant is None:
        key, message = secret, f"{order_ref}:{step}"
    else:
        key, message = merchant_secret(secret, merchant), f"{merchant}:{order_ref}:{step}"
    mac = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def verify_ipn_signature(
    secret: str, order_ref: str, step: str, sig: str, merchant: str | None = None
) -> bool:
    """Whether ``sig`` is the URL's signature, compared in constant time as bytes.

    A signature is base64url, so ASCII: anything else (a garbled or forged URL, e.g.
    ``?sig=oZ%07W%5D%C2%83``) does not match. It is never an error: ``hmac.compare_digest``
    refuses non-ASCII ``str``, and the IPN endpoint must answer it 403, not 500
    (docs/http-api.md).
    """
    expected = ipn_signature(secret, order_ref, step, merchant).encode("ascii")
    try:
        given = (sig or "").encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def ipn_url(
    public_url: str,
    secret: str,
    order_ref: str,
    step: IpnStep | str,
    merchant: str | None = None,
) -> str:
    step_value = step.value if isinstance(step, IpnStep) else step
    sig = ipn_signature(secret, order_ref, step_value, merchant)
    query = f"m={quote(merchant, safe='')}&sig={sig}" if merchant is not None else f"sig={sig}"
    url = f"{public_url.rstrip('/')}/ipn/{quote(order_ref, safe='')}/{step_value}?{query}"
    if len(url) > MAX_IPN_URL:
        raise ValueError(f"IPN URL is {len(url)} characters; Cotpay accepts {MAX_IPN_URL}")
    return url
