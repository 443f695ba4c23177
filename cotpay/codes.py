"""Cotpay result codes: the one table the client, the activities and the sandbox share.

See docs/cotpay-protocol.md, "Codes and errors". Every code maps to a typed exception carrying
the code, Cotpay's message, the endpoint and whether retrying the same call can help.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    SUCCESS = "success"
    BUSINESS = "business"
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    TIMING = "timing"
    CONFIG = "config"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class CodeInfo:
    code: int
    name: str
    message: str
    kind: ErrorKind
    retryable: bool
    reaction: str


SUCCESS = 10100

_TABLE: tuple[CodeInfo, ...] = (
    CodeInfo(10100, "Success", "Success", ErrorKind.SUCCESS, False, "continue"),
    CodeInfo(10200, "SellerNotFound", "Seller not found", ErrorKind.BUSINESS, False, "fail start"),
    CodeInfo(10300, "BuyerNotFound", "Buyer not found", ErrorKind.BUSINESS, False, "fail start"),
    CodeInfo(
        10400,
        "OrderCodeExists",
        "Order code already exists",
        ErrorKind.BUSINESS,
        False,
        "never create twice: NEEDS_ATTENTION with the evidence",
    ),
    CodeInfo(10500, "ValidationFailed", "Validation error", ErrorKind.VALIDATION, False, "fail"),
    CodeInfo(
        10700, "OrderNotFound", "Order not found", ErrorKind.NOT_FOUND, False, "NEEDS_ATTENTION"
    ),
    CodeInfo(
        10800,
        "PayoutFailed",
        "Payment failed",
        ErrorKind.BUSINESS,
        False,
        "NEEDS_ATTENTION (operator retry)",
    ),
    CodeInfo(
        10900,
        "WalletNotLinked",
        "Account not linked to a PayME wallet",
        ErrorKind.BUSINESS,
        False,
        "NEEDS_ATTENTION until the seller links it",
    ),
    CodeInfo(
        11000,
        "BankNotLinked",
        "Receiving account not linked to a bank",
        ErrorKind.BUSINESS,
        False,
        "NEEDS_ATTENTION until the seller links it",
    ),
    CodeInfo(
        11100,
        "PayoutTooEarly",
        "Request the payout after 16:00 on T+1",
        ErrorKind.TIMING,
        False,
        "sleep to the next allowed instant, retry",
    ),
    CodeInfo(
        11300,
        "InformationMismatch",
        "Information does not match",
        ErrorKind.BUSINESS,
        False,
        "NEEDS_ATTENTION",
    ),
    CodeInfo(11400, "TokenMissing", "No token", ErrorKind.CONFIG, False, "loud error"),
    CodeInfo(
        11800,
        "OrderBusy",
        "Order is in the middle of a transaction",
        ErrorKind.TRANSIENT,
        True,
        "retry with backoff",
    ),
)

CODES: dict[int, CodeInfo] = {info.code: info for info in _TABLE}


def code_info(code: int) -> CodeInfo:
    """The table entry for a code; an undocumented code is a non-retryable business error."""
    info = CODES.get(code)
    if info is not None:
        return info
    return CodeInfo(
        code, "UnknownCode", f"Undocumented Cotpay code {code}", ErrorKind.BUSINESS, False, "?"
    )


class CotpayError(Exception):
    """Base of every error the Cotpay client raises."""

    retryable: bool = False
    name: str = "CotpayError"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint


class CotpayCodeError(CotpayError):
    """Cotpay answered with a non-success code."""

    code: int = 0

    def __init__(
        self,
        code: int,
        message: str,
        *,
        endpoint: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        info = code_info(code)
        super().__init__(message or info.message, endpoint=endpoint)
        self.code = code
        self.name = info.name
        self.kind = info.kind
        self.retryable = info.retryable
        self.data = data or {}

    def __str__(self) -> str:
        where = f" on {self.endpoint}" if self.endpoint else ""
        return f"Cotpay {self.code} {self.name}{where}: {self.message}"


class SellerNotFound(CotpayCodeError):
    pass


class BuyerNotFound(CotpayCodeError):
    pass


class OrderCodeExists(CotpayCodeError):
    pass


class ValidationFailed(CotpayCodeError):
    pass


class OrderNotFound(CotpayCodeError):
    pass


class PayoutFailed(CotpayCodeError):
    pass


class WalletNotLinked(CotpayCodeError):
    pass


class BankNotLinked(CotpayCodeError):
    pass


class PayoutTooEarly(CotpayCodeError):
    pass


class InformationMismatch(CotpayCodeError):
    pass


class TokenMissing(CotpayCodeError):
    pass


class OrderBusy(CotpayCodeError):
    pass


class UnknownCode(CotpayCodeError):
    pass


class CotpayTransportError(CotpayError):
    """HTTP 5xx, timeouts, connection resets: the call may or may not have happened."""

    retryable = True
    name = "Transport"

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status = status


class CotpayProtocolError(CotpayError):
    """The answer could not be read: bad envelope, not JSON, unexpected shape or HTTP 4xx."""

    retryable = False
    name = "Protocol"


_CLASSES: dict[int, type[CotpayCodeError]] = {
    10200: SellerNotFound,
    10300: BuyerNotFound,
    10400: OrderCodeExists,
    10500: ValidationFailed,
    10700: OrderNotFound,
    10800: PayoutFailed,
    10900: WalletNotLinked,
    11000: BankNotLinked,
    11100: PayoutTooEarly,
    11300: InformationMismatch,
    11400: TokenMissing,
    11800: OrderBusy,
}


def error_for(
    code: int, message: str, *, endpoint: str = "", data: dict[str, Any] | None = None
) -> CotpayCodeError:
    """The typed exception for a non-success code."""
    cls = _CLASSES.get(code, UnknownCode)
    return cls(code, message, endpoint=endpoint, data=data)
