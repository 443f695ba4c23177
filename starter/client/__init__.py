"""The async Python client of escrow orders, for shop backends, operators, the gateway and the CLI.

``EscrowClient`` (``escrow.py``) over a connected ``temporalio.client.Client``
(``runtime.temporal.connect``), its typed errors (``errors.py``) and the start request both front
doors validate (``requests.py``). See docs/cli.md for a library example.
"""

from starter.client.errors import (
    EscrowClientError,
    InvalidState,
    OrderClosed,
    OrderConflict,
    OrderNotFound,
    StartTimeout,
    TemporalUnavailable,
    VisibilityUnavailable,
)
from starter.client.escrow import (
    COTPAY_ID_PATTERN,
    FROM_ENVIRONMENT,
    IDENTITY_FIELDS,
    EscrowClient,
    FromEnvironment,
    OrderSummary,
    StartResult,
)
from starter.client.requests import CreateOrderBody, TimerOverrides

__all__ = [
    "COTPAY_ID_PATTERN",
    "FROM_ENVIRONMENT",
    "IDENTITY_FIELDS",
    "CreateOrderBody",
    "EscrowClient",
    "EscrowClientError",
    "FromEnvironment",
    "InvalidState",
    "OrderClosed",
    "OrderConflict",
    "OrderNotFound",
    "OrderSummary",
    "StartResult",
    "StartTimeout",
    "TemporalUnavailable",
    "TimerOverrides",
    "VisibilityUnavailable",
]
