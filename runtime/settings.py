"""The ``ESCROW_*`` settings the worker, the gateway and the CLI share (docs/deployment.md).

Temporal's connection is configured apart, the Temporal CLI's way (``runtime/temporal.py``).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.models import PayoutRule


class EscrowSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCROW_", extra="ignore")

    public_url: str = "http://127.0.0.1:8000"
    ipn_secret: SecretStr = SecretStr("dev-ipn-secret-change-me")
    api_keys: str = "dev-api-key"
    payout_rule: PayoutRule = PayoutRule.T1_1600
    payment_window: timedelta = timedelta(hours=24)
    grace_period: timedelta = timedelta(days=7)
    delivery_deadline: timedelta = timedelta(days=14)
    return_window: timedelta = timedelta(days=7)
    inspection_period: timedelta = timedelta(0)
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    log_format: str = "console"
    # Swagger UI at /docs (files of the fastapi-offline package, no CDN); off in production.
    api_docs: bool = True

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]
