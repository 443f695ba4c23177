"""Webhook endpoints and deliveries as the API shows them (docs/webhooks.md, docs/http-api.md).

JSON is camelCase like every model of the service. A secret appears only in ``EndpointCreated``
and ``SecretRotated``, the answers of the two calls that make one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from workflows.models import Model

Description = Annotated[str, StringConstraints(max_length=500)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its turn, its next attempt, or an enabled endpoint
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: retry window over, or an earlier event of the order failed


class DisabledReason(StrEnum):
    MANUAL = "manual"  # PATCH enabled=false, or cotpay-escrow webhooks disable
    FAILING = "failing"  # disabled automatically (docs/webhooks.md, Auto-disable)


class EndpointCreate(Model):
    url: Url
    event_types: list[str] | None = Field(
        default=None,
        description='Event types to receive; omitted or ["*"]: all of them',
        max_length=50,
    )
    description: Description = ""


class EndpointUpdate(Model):
    url: Url | None = None
    event_types: list[str] | None = Field(default=None, max_length=50)
    description: Description | None = None
    enabled: bool | None = None


class RotateSecret(Model):
    overlap_hours: float | None = Field(
        default=None,
        ge=0,
        le=24,
        description="How long the old secret keeps signing (default 24; 0 for a leaked secret)",
    )


class Endpoint(Model):
    id: str
    url: str
    event_types: list[str]
    description: str = ""
    enabled: bool
    disabled_reason: DisabledReason | None = None
    disabled_at: datetime | None = None
    previous_secret_expires_at: datetime | None = None
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(Endpoint):
    secret: str = Field(description="The signing secret: shown only now")


class SecretRotated(Model):
    id: str
    secret: str = Field(description="The new signing secret: shown only now")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the old secret signs too (a second signature)"
    )


class EndpointList(Model):
    endpoints: list[Endpoint]


class Delivery(Model):
    """One event to one endpoint, with its last attempt."""

    id: int
    endpoint_id: str
    event_id: str
    type: str
    order_ref: str
    seq: int
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt")
    expires_at: datetime
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_latency_ms: int | None = None
    last_error: str | None = None
    last_response: str | None = None
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    created_at: datetime


class DeliveryList(Model):
    deliveries: list[Delivery]
    next_before: int | None = Field(
        default=None, description="Pass as `before` for the next (older) page; null at the end"
    )
