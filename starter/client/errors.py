"""Typed errors of the escrow client; the gateway and the CLI map each to one stable code.

The codes and their HTTP statuses are listed in docs/http-api.md.
"""

from __future__ import annotations

from workflows.models import OrderView


class EscrowClientError(Exception):
    """Base class. ``code`` is a stable machine-readable string, ``message`` a human sentence."""

    code = "escrow_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OrderNotFound(EscrowClientError):
    code = "order_not_found"

    def __init__(self, order_ref: str) -> None:
        super().__init__(f"no order {order_ref!r}")
        self.order_ref = order_ref


class OrderConflict(EscrowClientError):
    """The ``orderRef`` exists with a different input; ``fields`` names the differing fields."""

    code = "order_conflict"

    def __init__(self, order_ref: str, fields: list[str]) -> None:
        super().__init__(f"order {order_ref!r} already exists with different {', '.join(fields)}")
        self.order_ref = order_ref
        self.fields = fields


class InvalidState(EscrowClientError):
    """A message the order cannot take in its current state (an update validator refused it)."""

    def __init__(self, code: str, message: str, *, view: OrderView | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.view = view


class OrderClosed(EscrowClientError):
    """The order's workflow has finished; it takes no more signals or updates."""

    code = "order_closed"

    def __init__(self, order_ref: str) -> None:
        super().__init__(f"order {order_ref!r} is finished")
        self.order_ref = order_ref


class TemporalUnavailable(EscrowClientError):
    """Temporal did not answer in time; the caller may retry."""

    code = "temporal_unavailable"


class StartTimeout(EscrowClientError):
    """The order may have started but its payment data did not come back in time."""

    code = "start_timeout"


class VisibilityUnavailable(EscrowClientError):
    """The Temporal server cannot run list queries (no advanced visibility)."""

    code = "visibility_unavailable"
