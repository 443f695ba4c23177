"""Cotpay errors as Temporal ``ApplicationError``s, typed after the Cotpay condition.

``type`` is the exception class name of ``cotpay.codes`` (``PayoutTooEarly``, ``OrderBusy``,
...), ``Transport`` or ``Protocol``; ``details[0]`` is ``{"code", "message", "data"}`` where
``data`` is Cotpay's answer (the evidence, e.g. the existing order of a 10400). Only retryable
conditions (11800, transport) are retried by Temporal; the rest go straight to the workflow.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from cotpay.codes import CotpayCodeError, CotpayError, CotpayProtocolError, CotpayTransportError

INVALID_REQUEST = "InvalidRequest"


def _data(exc: CotpayCodeError) -> dict[str, Any]:
    return {k: v for k, v in exc.data.items() if k not in ("code", "message")}


def application_error(exc: CotpayError) -> ApplicationError:
    detail: dict[str, Any]
    if isinstance(exc, CotpayCodeError):
        detail = {"code": exc.code, "message": exc.message, "data": _data(exc)}
        return ApplicationError(
            str(exc), detail, type=type(exc).__name__, non_retryable=not exc.retryable
        )
    if isinstance(exc, CotpayTransportError):
        detail = {"code": exc.status, "message": exc.message, "data": {}}
        return ApplicationError(str(exc), detail, type="Transport", non_retryable=False)
    if isinstance(exc, CotpayProtocolError):
        detail = {"code": None, "message": exc.message, "data": {}}
        return ApplicationError(str(exc), detail, type="Protocol", non_retryable=True)
    detail = {"code": None, "message": exc.message, "data": {}}
    return ApplicationError(str(exc), detail, type=exc.name, non_retryable=not exc.retryable)


def invalid_request(endpoint: str, exc: ValidationError) -> ApplicationError:
    """A request our own models refuse (e.g. a buyer id that is not a phone number for sign-up)."""
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
    message = f"{endpoint}: invalid request fields: {fields}"
    detail: dict[str, Any] = {"code": None, "message": message, "data": {}}
    return ApplicationError(message, detail, type=INVALID_REQUEST, non_retryable=True)
