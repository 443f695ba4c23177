"""``ESCROW_WEBHOOK_*``: limits, timeouts, retry schedule and outbound safety of webhooks
(docs/webhooks.md). ``ESCROW_ENV=production`` switches on the production rules (https only, no
private targets unless ``ESCROW_WEBHOOK_ALLOW_PRIVATE``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESCROW_WEBHOOK_", extra="ignore", populate_by_name=True
    )

    # Deployment: "production" turns on the outbound rules of docs/webhooks.md (Safety).
    env: str = Field(default="development", validation_alias="ESCROW_ENV")
    allow_private: bool = False
    max_endpoints: int = Field(default=16, ge=1, le=1000)
    # The worker starts a dispatcher unless this is false (then run `cotpay-escrow webhooks
    # dispatch` somewhere).
    dispatcher: bool = True
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    # Requests in flight per endpoint and per dispatcher process.
    concurrency: int = Field(default=4, ge=1, le=64)
    max_in_flight: int = Field(default=64, ge=1, le=1024)
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    read_timeout: float = Field(default=10.0, gt=0, le=120)
    # The whole attempt (connect, send, answer, body), whatever the receiver does.
    attempt_timeout: float = Field(default=20.0, gt=0, le=300)
    max_response_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # A claimed delivery is leased to one dispatcher this long; it must outlast an attempt.
    lease: float = Field(default=60.0, gt=0, le=3600)
    retry_first_delay: timedelta = timedelta(seconds=15)
    retry_max_delay: timedelta = timedelta(hours=6)
    retry_window: timedelta = timedelta(days=3)
    disable_after_failures: int = Field(default=20, ge=1)
    disable_after: timedelta = timedelta(days=3)
    rotation_overlap: timedelta = timedelta(hours=24)
    batch: int = Field(default=200, ge=1, le=5000)
    # Status entries recorded up to this long before the newest one taken are looked at again
    # (a write that committed late, or a writer whose clock is behind).
    lookback: timedelta = timedelta(seconds=60)

    @field_validator(
        "retry_first_delay",
        "retry_max_delay",
        "retry_window",
        "disable_after",
        "rotation_overlap",
        "lookback",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: object) -> object:
        """Durations: seconds (``259200``) or ISO 8601 (``PT72H``, ``P3D``)."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    @property
    def production(self) -> bool:
        return self.env.strip().lower() == "production"

    @property
    def private_targets_allowed(self) -> bool:
        """Private, loopback and link-local targets: always in development, in production only
        with ``ESCROW_WEBHOOK_ALLOW_PRIVATE``."""
        return not self.production or self.allow_private

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.lease <= self.attempt_timeout:
            raise ValueError(
                "ESCROW_WEBHOOK_LEASE must be longer than ESCROW_WEBHOOK_ATTEMPT_TIMEOUT"
            )
        if self.retry_first_delay <= timedelta(0) or self.retry_max_delay < self.retry_first_delay:
            raise ValueError("the retry delays must be positive, the maximum above the first")
        return self
