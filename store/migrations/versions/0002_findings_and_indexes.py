"""findings (reconciliation findings and stranded money); indexes for listing and reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
OPEN = sa.text("closed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "findings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.Column("close_note", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
    )
    op.create_index(
        "uq_findings_open_kind_key",
        "findings",
        ["kind", "key"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_findings_order_ref", "findings", ["order_ref"])
    op.create_index("ix_findings_opened_at", "findings", ["opened_at"])
    op.create_index("ix_orders_created_at_order_ref", "orders", ["created_at", "order_ref"])
    op.create_index("ix_orders_updated_at_order_ref", "orders", ["updated_at", "order_ref"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_seller_id", "orders", ["seller_id"])
    op.create_index("ix_orders_buyer_id", "orders", ["buyer_id"])
    op.create_index("ix_orders_merchant_created_at", "orders", ["merchant", "created_at"])
    op.create_index("ix_order_events_time", "order_events", ["time"])
    op.create_index("ix_order_events_money_time", "order_events", ["money", "time"])


def downgrade() -> None:
    for name, table in (
        ("ix_order_events_money_time", "order_events"),
        ("ix_order_events_time", "order_events"),
        ("ix_orders_merchant_created_at", "orders"),
        ("ix_orders_buyer_id", "orders"),
        ("ix_orders_seller_id", "orders"),
        ("ix_orders_status", "orders"),
        ("ix_orders_updated_at_order_ref", "orders"),
        ("ix_orders_created_at_order_ref", "orders"),
        ("ix_findings_opened_at", "findings"),
        ("ix_findings_order_ref", "findings"),
        ("uq_findings_open_kind_key", "findings"),
    ):
        op.drop_index(name, table_name=table)
    op.drop_table("findings")
