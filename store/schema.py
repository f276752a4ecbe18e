"""SQLAlchemy tables. Times are epoch seconds (float): portable across SQLite and PostgreSQL.

Alembic migrations in ``store/migrations`` create these; ``metadata`` is their single source.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

credentials = Table(
    "credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("entity_type", String(40), nullable=False),
    Column("destination", String(40), nullable=False),
    # PENDING (waiting for consent), ACTIVE, NEEDS_REAUTH (refresh refused: a person reconnects).
    Column("status", String(20), nullable=False),
    Column("tenant_id", String(64)),
    Column("tenant_name", String(300)),
    # Fernet ciphertext of the token set's JSON; never the clear text.
    Column("token_ciphertext", Text),
    # Bumped by every change to the token set or its refresh lease (compare-and-swap).
    Column("token_version", Integer, nullable=False, default=0),
    Column("access_expires_at", Float),
    Column("refresh_lease_until", Float),
    # While PENDING: when it stops being completable, the OAuth state and the PKCE verifier.
    Column("pending_expires_at", Float),
    Column("oauth_state", String(128), unique=True),
    Column("pkce_verifier_ciphertext", Text),
    Column("state_used", Boolean, nullable=False, default=False),
    Column("flow_run_id", String(36)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("destination", "entity_type", "name", name="uq_credentials_name"),
)


integrations = Table(
    "integrations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("entity_type", String(40), nullable=False),
    Column("destination", String(40), nullable=False),
    # The validated IntegrationConfig as JSON: every console option in one document.
    Column("config_json", Text, nullable=False),
    Column(
        "credential_id",
        String(36),
        ForeignKey("credentials.id", ondelete="SET NULL"),
    ),
    Column("disabled_at", Float),
    Column("disabled_reason", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("destination", "entity_type", "name", name="uq_integrations_name"),
)

# One row per integration and bill: the fate of that bill at Xero (see store/ledger.py).
bill_ledger = Table(
    "bill_ledger",
    metadata,
    Column(
        "integration_id",
        String(36),
        ForeignKey("integrations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("bill_id", String(64), primary_key=True),
    Column("account_id", String(64)),
    Column("bill_version", Integer, nullable=False),
    Column("sent_version", Integer),
    Column("document_type", String(20)),
    Column("invoice_number", String(255)),
    Column("xero_id", String(64)),
    Column("tenant_id", String(64)),
    Column("outcome", String(40), nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("idempotency_key", String(128)),
    Column("sync_run_id", String(36)),
    Column("first_seen_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("sent_at", Float),
)

# One row per integration: the newest bill modification (m3ter's dtLastModified, epoch seconds)
# a completed read has seen, and the fingerprint of what decided which bills count
# (see store/watermarks.py).
sync_watermarks = Table(
    "sync_watermarks",
    metadata,
    Column(
        "integration_id",
        String(36),
        ForeignKey("integrations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("fingerprint", String(64), nullable=False),
    Column("modified_through", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# At most one run posts an integration's bills at a time (see store/sync_leases.py): the row
# names the holder (a flow run) and when its lease lapses unless renewed.
sync_leases = Table(
    "sync_leases",
    metadata,
    Column(
        "integration_id",
        String(36),
        ForeignKey("integrations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("holder", String(64), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Xero's per-tenant limits shared by every process (see store/tenant_limits.py): a row per call
# slot (free, or held by one poster until its lease lapses) and a row per tenant for the rate.
tenant_slots = Table(
    "tenant_slots",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("holder", String(64)),
    Column("expires_at", Float, nullable=False),
)

tenant_rate = Table(
    "tenant_rate",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    # When the next call may start: a grant moves it one refill interval past its own time.
    Column("next_at", Float, nullable=False),
)

# The Xero contacts the sync made sure of (tasks/sync/contacts.py): per tenant and contact
# number (the m3ter account id), the contact's id, its status and a fingerprint of the details
# last sent, so an unchanged account costs no call on the next run.
xero_contacts = Table(
    "xero_contacts",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("contact_number", String(255), primary_key=True),
    Column("contact_id", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)
