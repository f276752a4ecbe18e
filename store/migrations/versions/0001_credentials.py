"""Credentials: pending OAuth state, encrypted token sets, versioned for compare-and-swap.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("entity_type", sa.String(40), nullable=False),
        sa.Column("destination", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("tenant_name", sa.String(300)),
        sa.Column("token_ciphertext", sa.Text),
        sa.Column("token_version", sa.Integer, nullable=False),
        sa.Column("access_expires_at", sa.Float),
        sa.Column("refresh_lease_until", sa.Float),
        sa.Column("pending_expires_at", sa.Float),
        sa.Column("oauth_state", sa.String(128), unique=True),
        sa.Column("pkce_verifier_ciphertext", sa.Text),
        sa.Column("state_used", sa.Boolean, nullable=False),
        sa.Column("flow_run_id", sa.String(36)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("destination", "entity_type", "name", name="uq_credentials_name"),
    )


def downgrade() -> None:
    op.drop_table("credentials")
