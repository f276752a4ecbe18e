"""Tenant limits: Xero's per-tenant call slots and call rate, shared by every process.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_slots",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("holder", sa.String(64)),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "tenant_rate",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("next_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_rate")
    op.drop_table("tenant_slots")
