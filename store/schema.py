"""The store's tables as SQLAlchemy Core metadata (docs/store.md).

The migrations in ``store/migrations/versions`` create exactly these; a test compares them.
Times are ``UtcDateTime``: aware UTC datetimes in Python, ``timestamptz`` on PostgreSQL and
fixed-width UTC text on SQLite (so that SQLite compares them in time order).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored in UTC; a naive value is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")

orders = Table(
    "orders",
    metadata,
    # revision 0005: keyed by (merchant, order_ref): two merchants may use the same orderRef.
    Column("merchant", String(64), primary_key=True, server_default=text("'default'")),
    Column("order_ref", String(64), primary_key=True),
    Column("workflow_id", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("cotpay_order_id", BigInteger),
    Column("seller_id", String(64), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("pay_method", String(32), nullable=False),
    Column("payout_rule", String(32), nullable=False),
    Column("payment", Text),
    Column("held_at", UtcDateTime),
    Column("delivered_at", UtcDateTime),
    Column("payout_not_before", UtcDateTime),
    Column("paid_out_at", UtcDateTime),
    Column("refunded_at", UtcDateTime),
    Column("attention_reason", Text),
    Column("attention_code", Integer),
    Column("attention_since", UtcDateTime),
    Column("attention_step", String(64)),
    Column("waiting_for", Text, nullable=False, server_default=text("''")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_seq", Integer, nullable=False, server_default=text("0")),
    Column("revision", Integer, nullable=False, server_default=text("0")),
    # revision 0002: keyset listing and filters
    Index(None, "created_at", "order_ref"),
    Index(None, "updated_at", "order_ref"),
    Index(None, "status"),
    Index(None, "seller_id"),
    Index(None, "buyer_id"),
    Index(None, "merchant", "created_at"),
)

order_events = Table(
    "order_events",
    metadata,
    # revision 0005: the merchant joins the key, and the foreign key to orders
    Column("merchant", String(64), primary_key=True, server_default=text("'default'")),
    Column("order_ref", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time", UtcDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("status", String(32)),
    Column("detail", Text, nullable=False, server_default=text("''")),
    Column("money", String(32)),
    Column("cotpay_order_id", BigInteger),
    Column("transaction_id", String(128)),
    Column("amount", BigInteger),
    Column("data", JSON),
    Column("recorded_at", UtcDateTime, nullable=False),
    # revision 0002: money report and day flows
    Index(None, "time"),
    Index(None, "money", "time"),
    # revision 0003: the webhook dispatcher takes new status entries by recorded_at
    Index(None, "kind", "recorded_at"),
    ForeignKeyConstraint(
        ["merchant", "order_ref"],
        ["orders.merchant", "orders.order_ref"],
        name="fk_order_events_merchant_order_ref_orders",
    ),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    # revision 0005: whose order the finding is about (a key is unique per merchant)
    Column("merchant", String(64), nullable=False, server_default=text("'default'")),
    Column("order_ref", String(64)),
    Column("detail", Text, nullable=False, server_default=text("''")),
    Column("data", JSON),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    Column("closed_by", String(100)),
    Column("close_note", Text, nullable=False, server_default=text("''")),
    Index(
        "uq_findings_open_merchant_kind_key",
        "merchant",
        "kind",
        "key",
        unique=True,
        sqlite_where=text("closed_at IS NULL"),
        postgresql_where=text("closed_at IS NULL"),
    ),
    Index(None, "merchant", "order_ref"),
    Index(None, "opened_at"),
)

# --- revision 0003: webhooks (docs/webhooks.md) ------------------------------------------------

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("merchant", String(64), nullable=False, server_default=text("'default'")),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("event_types", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(32)),
    Column("disabled_at", UtcDateTime),
    # Signing secrets, sealed with the codec key ring when one is configured (webhooks.secrets).
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", UtcDateTime),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("failing_since", UtcDateTime),
    Column("last_success_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "merchant", "created_at"),
)

# One row per status entry of order_events that the dispatcher took: the exact body it sends.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("order_ref", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("merchant", String(64), nullable=False),
    Column("type", String(64), nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("merchant", "order_ref", "seq"),  # revision 0005: was (order_ref, seq)
    Index(None, "recorded_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", String(40), ForeignKey("webhook_events.id"), nullable=False),
    Column("order_ref", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("leased_until", UtcDateTime),
    Column("lease_owner", String(64)),
    Column("last_attempt_at", UtcDateTime),
    Column("last_status_code", Integer),
    Column("last_latency_ms", Integer),
    Column("last_error", Text),
    Column("last_response", Text),
    Column("delivered_at", UtcDateTime),
    Column("failed_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("endpoint_id", "event_id"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "endpoint_id", "order_ref", "seq"),
    Index(None, "endpoint_id", "created_at"),
)

# --- revision 0004: merchants, API keys and the audit trail (docs/security.md)

merchants = Table(
    "merchants",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("app_id", String(128), nullable=False, server_default=text("''")),
    Column("base_url", String(512), nullable=False, server_default=text("''")),
    Column("envelope", String(16), nullable=False, server_default=text("'encrypted'")),
    # Secrets (access token, merchant private key, Cotpay public key) sealed with the codec key
    # ring (store/merchants.py); or references to files instead.
    Column("sealed_credentials", Text),
    Column("access_token_file", Text),
    Column("private_key_file", Text),
    Column("public_key_file", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("merchant", String(32), ForeignKey("merchants.name"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False, server_default=text("''")),
    Column("last_used_at", UtcDateTime),
    Column("expires_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("replaces", String(32)),
    Index(None, "merchant"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("time", UtcDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("key_id", String(32)),
    Column("merchant", String(32)),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False, server_default=text("''")),
    Column("detail", Text, nullable=False, server_default=text("''")),
    Column("data", JSON),
    Index(None, "time"),
    Index(None, "merchant", "time"),
    Index(None, "action", "time"),
)
