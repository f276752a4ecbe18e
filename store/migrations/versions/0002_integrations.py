"""Integrations: configuration documents, their credential and their disabled state.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("entity_type", sa.String(40), nullable=False),
        sa.Column("destination", sa.String(40), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column(
            "credential_id",
            sa.String(36),
            sa.ForeignKey("credentials.id", ondelete="SET NULL", name="fk_integrations_credential"),
        ),
        sa.Column("disabled_at", sa.Float),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("destination", "entity_type", "name", name="uq_integrations_name"),
    )


def downgrade() -> None:
    op.drop_table("integrations")
