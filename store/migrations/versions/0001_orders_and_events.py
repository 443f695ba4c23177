"""orders (current view of each order) and order_events (append-only timeline and money events)

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("merchant", sa.String(64), nullable=False, server_default=sa.text("'default'")),
        sa.Column("workflow_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("cotpay_order_id", sa.BigInteger(), nullable=True),
        sa.Column("seller_id", sa.String(64), nullable=False),
        sa.Column("buyer_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("pay_method", sa.String(32), nullable=False),
        sa.Column("payout_rule", sa.String(32), nullable=False),
        sa.Column("payment", sa.Text(), nullable=True),
        sa.Column("held_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("payout_not_before", TS, nullable=True),
        sa.Column("paid_out_at", TS, nullable=True),
        sa.Column("refunded_at", TS, nullable=True),
        sa.Column("attention_reason", sa.Text(), nullable=True),
        sa.Column("attention_code", sa.Integer(), nullable=True),
        sa.Column("attention_since", TS, nullable=True),
        sa.Column("attention_step", sa.String(64), nullable=True),
        sa.Column("waiting_for", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("order_ref", name="pk_orders"),
    )
    op.create_table(
        "order_events",
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("money", sa.String(32), nullable=True),
        sa.Column("cotpay_order_id", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sa.String(128), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_ref"], ["orders.order_ref"], name="fk_order_events_order_ref_orders"
        ),
        sa.PrimaryKeyConstraint("order_ref", "seq", name="pk_order_events"),
    )


def downgrade() -> None:
    op.drop_table("order_events")
    op.drop_table("orders")
