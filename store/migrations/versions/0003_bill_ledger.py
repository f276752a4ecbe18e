"""The bill ledger: one row per integration and bill, the fate of that bill at Xero.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bill_ledger",
        sa.Column(
            "integration_id",
            sa.String(36),
            sa.ForeignKey("integrations.id", ondelete="CASCADE", name="fk_ledger_integration"),
            primary_key=True,
        ),
        sa.Column("bill_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(64)),
        sa.Column("bill_version", sa.Integer, nullable=False),
        sa.Column("sent_version", sa.Integer),
        sa.Column("document_type", sa.String(20)),
        sa.Column("invoice_number", sa.String(255)),
        sa.Column("xero_id", sa.String(64)),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("sync_run_id", sa.String(36)),
        sa.Column("first_seen_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
    )
    op.create_index("ix_ledger_outcome", "bill_ledger", ["integration_id", "outcome"])


def downgrade() -> None:
    op.drop_index("ix_ledger_outcome", table_name="bill_ledger")
    op.drop_table("bill_ledger")
