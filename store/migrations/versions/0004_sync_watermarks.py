"""Sync watermarks: how far each integration has read m3ter's bills by dtLastModified.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_watermarks",
        sa.Column(
            "integration_id",
            sa.String(36),
            sa.ForeignKey("integrations.id", ondelete="CASCADE", name="fk_watermark_integration"),
            primary_key=True,
        ),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("modified_through", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sync_watermarks")
