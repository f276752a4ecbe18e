"""Xero contacts: which contact each m3ter account became in each tenant, and with what details.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xero_contacts",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("contact_number", sa.String(255), primary_key=True),
        sa.Column("contact_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("xero_contacts")
