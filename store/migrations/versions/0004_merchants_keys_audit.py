"""merchants (Cotpay accounts), api_keys (hashed, with roles), audit_events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Independent of the webhook tables (0003); written on 0002, re-chained onto 0003 at the merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(128), nullable=False, server_default=sa.text("''")),
        sa.Column("base_url", sa.String(512), nullable=False, server_default=sa.text("''")),
        sa.Column("envelope", sa.String(16), nullable=False, server_default=sa.text("'encrypted'")),
        sa.Column("sealed_credentials", sa.Text(), nullable=True),
        sa.Column("access_token_file", sa.Text(), nullable=True),
        sa.Column("private_key_file", sa.Text(), nullable=True),
        sa.Column("public_key_file", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("disabled_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_merchants"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("merchant", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=sa.text("''")),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("replaces", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        sa.ForeignKeyConstraint(
            ["merchant"], ["merchants.name"], name="fk_api_keys_merchant_merchants"
        ),
    )
    op.create_index("ix_api_keys_merchant", "api_keys", ["merchant"])
    op.create_table(
        "audit_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("merchant", sa.String(32), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False, server_default=sa.text("''")),
        sa.Column("detail", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_time", "audit_events", ["time"])
    op.create_index("ix_audit_events_merchant_time", "audit_events", ["merchant", "time"])
    op.create_index("ix_audit_events_action_time", "audit_events", ["action", "time"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_action_time", table_name="audit_events")
    op.drop_index("ix_audit_events_merchant_time", table_name="audit_events")
    op.drop_index("ix_audit_events_time", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_api_keys_merchant", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("merchants")
