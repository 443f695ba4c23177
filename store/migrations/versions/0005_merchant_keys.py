"""orders, order_events, webhook_events and findings keyed by (merchant, orderRef)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Two merchants may use the same orderRef (their workflow ids differ: ``workflows.models.
workflow_id_for``), so the store keys orders by (merchant, order_ref):

- ``orders``: primary key (merchant, order_ref) (was order_ref);
- ``order_events``: a ``merchant`` column, primary key (merchant, order_ref, seq) and a foreign
  key (merchant, order_ref) to ``orders``;
- ``webhook_events``: unique (merchant, order_ref, seq) (was (order_ref, seq));
- ``findings``: a ``merchant`` column; at most one open finding per (merchant, kind, key).

Existing rows keep merchant ``default`` (the server default of the new columns, and what every
``orders`` row already says). On SQLite (batch mode: tables are recreated) a table cannot be
recreated while another table's foreign key refers to it inside the migration's transaction
(``PRAGMA foreign_keys`` cannot be turned off there), so each referring foreign key is dropped
first and created again last; PostgreSQL runs the same steps as plain ``ALTER TABLE``.

Downgrade fails when two merchants share an orderRef (the old keys cannot hold both).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT = sa.text("'default'")
OPEN = sa.text("closed_at IS NULL")


def upgrade() -> None:
    # 1. Nothing may refer to orders or webhook_events while they change.
    with op.batch_alter_table("order_events") as batch:
        batch.add_column(
            sa.Column("merchant", sa.String(64), nullable=False, server_default=DEFAULT)
        )
        batch.drop_constraint("fk_order_events_order_ref_orders", type_="foreignkey")
        batch.drop_constraint("pk_order_events", type_="primary")
        batch.create_primary_key("pk_order_events", ["merchant", "order_ref", "seq"])
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("fk_webhook_deliveries_event_id_webhook_events", type_="foreignkey")
    # 2. The new keys.
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("pk_orders", type_="primary")
        batch.create_primary_key("pk_orders", ["merchant", "order_ref"])
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_constraint("uq_webhook_events_order_ref_seq", type_="unique")
        batch.create_unique_constraint(
            "uq_webhook_events_merchant_order_ref_seq", ["merchant", "order_ref", "seq"]
        )
    # 3. The foreign keys again.
    with op.batch_alter_table("order_events") as batch:
        batch.create_foreign_key(
            "fk_order_events_merchant_order_ref_orders",
            "orders",
            ["merchant", "order_ref"],
            ["merchant", "order_ref"],
        )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.create_foreign_key(
            "fk_webhook_deliveries_event_id_webhook_events", "webhook_events", ["event_id"], ["id"]
        )
    # Findings: one open finding per (merchant, kind, key).
    op.drop_index("uq_findings_open_kind_key", table_name="findings")
    op.drop_index("ix_findings_order_ref", table_name="findings")
    with op.batch_alter_table("findings") as batch:
        batch.add_column(
            sa.Column("merchant", sa.String(64), nullable=False, server_default=DEFAULT)
        )
    op.create_index(
        "uq_findings_open_merchant_kind_key",
        "findings",
        ["merchant", "kind", "key"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_findings_merchant_order_ref", "findings", ["merchant", "order_ref"])


def downgrade() -> None:
    op.drop_index("ix_findings_merchant_order_ref", table_name="findings")
    op.drop_index("uq_findings_open_merchant_kind_key", table_name="findings")
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("merchant")
    op.create_index(
        "uq_findings_open_kind_key",
        "findings",
        ["kind", "key"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_findings_order_ref", "findings", ["order_ref"])
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("fk_webhook_deliveries_event_id_webhook_events", type_="foreignkey")
    with op.batch_alter_table("order_events") as batch:
        batch.drop_constraint("fk_order_events_merchant_order_ref_orders", type_="foreignkey")
        batch.drop_constraint("pk_order_events", type_="primary")
        batch.create_primary_key("pk_order_events", ["order_ref", "seq"])
        batch.drop_column("merchant")
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("pk_orders", type_="primary")
        batch.create_primary_key("pk_orders", ["order_ref"])
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_constraint("uq_webhook_events_merchant_order_ref_seq", type_="unique")
        batch.create_unique_constraint("uq_webhook_events_order_ref_seq", ["order_ref", "seq"])
    with op.batch_alter_table("order_events") as batch:
        batch.create_foreign_key(
            "fk_order_events_order_ref_orders", "orders", ["order_ref"], ["order_ref"]
        )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.create_foreign_key(
            "fk_webhook_deliveries_event_id_webhook_events", "webhook_events", ["event_id"], ["id"]
        )
