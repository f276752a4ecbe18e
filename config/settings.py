"""Settings from the environment (prefix ``BILLSYNC_``) or a ``.env`` file.

Defaults point at the real Xero; the demo and the tests point the base URLs at the sandbox.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SCOPES = "offline_access accounting.invoices accounting.contacts accounting.settings"


class Settings(BaseSettings):
    """What people configure. Secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(env_prefix="BILLSYNC_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in data_dir"
    )
    encryption_key: SecretStr | None = Field(
        default=None, description="Fernet key that encrypts token sets at rest"
    )

    xero_client_id: str = ""
    xero_client_secret: SecretStr = SecretStr("")
    xero_redirect_uri: str = "http://127.0.0.1:8765/xero/callback"
    xero_scopes: str = DEFAULT_SCOPES
    xero_login_url: str = "https://login.xero.com"
    xero_identity_url: str = "https://identity.xero.com"
    xero_api_url: str = "https://api.xero.com"

    m3ter_api_url: str = "https://api.m3ter.com"
    m3ter_org_id: str = ""
    m3ter_client_id: str = ""
    m3ter_client_secret: SecretStr = SecretStr("")

    credential_ttl_seconds: float = Field(default=600, gt=0)
    token_refresh_margin_seconds: float = 300
    http_timeout_seconds: float = 30

    # Bill sync: batches, paging, retries, and Xero's per-tenant limits (a scaled "minute" in
    # tests and benchmarks: xero_minute_seconds=3 makes 60 calls a minute mean 60 per 3 s).
    sync_batch_size: int = Field(default=50, ge=1, le=50)
    sync_page_size: int = Field(default=200, ge=1, le=200)
    # Documents per "post to Xero" task: big enough that a sync of 50,000 bills is a few hundred
    # Prefect task runs, not thousands; small enough that posting starts after a few pages.
    sync_documents_per_task: int = Field(default=500, ge=1)
    # Accounts a sync keeps at once (tasks/sync/accounts.py): memory flat whatever the org's size.
    sync_account_cache: int = Field(default=500, ge=1)
    # Re-read window behind the watermark (see store/watermarks.py).
    sync_modified_overlap_seconds: float = Field(default=300, ge=0)
    # One run at a time posts an integration's bills (store/sync_leases.py): the lease lapses
    # this long after its run stops renewing it; a second run waits this long at most.
    sync_lease_seconds: float = Field(default=60, gt=0)
    sync_lease_wait_seconds: float = Field(default=1800, ge=0)
    sync_max_attempts: int = Field(default=6, ge=1)
    sync_retry_base_seconds: float = Field(default=0.5, ge=0)
    sync_retry_max_seconds: float = Field(default=60, ge=0)
    auto_disable_after_failed_runs: int = Field(default=3, ge=1)
    xero_tenant_concurrency: int = Field(default=5, ge=1)
    xero_tenant_calls_per_minute: int = Field(default=60, ge=2)
    xero_minute_seconds: float = Field(default=60, gt=0)
    # Xero's per-tenant limits shared by every process through the project database
    # (store/tenant_limits.py); off: a per-process semaphore only (one process, or no limits).
    xero_shared_limits: bool = True
    # A dead poster's call slot comes back this long after its last renewal.
    xero_slot_lease_seconds: float = Field(default=60, gt=0)
    # Every wait ends (tasks/sync/limits.py): for a call slot or a rate grant, at most this long.
    xero_limit_wait_seconds: float = Field(default=600, gt=0)
    # A posting task not done in this long interrupts its integration's sync; an integration's
    # sync not done in this long is reported "not synced to the end" by its run.
    sync_post_task_timeout_seconds: float = Field(default=1800, gt=0)
    sync_run_timeout_seconds: float = Field(default=6 * 3600, gt=0)
    # The Prefect API unreachable: the sync keeps posting, then waits this long at most to
    # report its end (tasks/prefect_api.py).
    prefect_api_wait_seconds: float = Field(default=300, ge=0)

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str = "billsync@localhost"

    @property
    def sqlalchemy_url(self) -> str:
        """The project database: ``database_url``, else a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'billsync.db').resolve()}"

    @property
    def xero_authorize_endpoint(self) -> str:
        """Where the Go to Xero link points."""
        return f"{self.xero_login_url.rstrip('/')}/identity/connect/authorize"

    @property
    def xero_token_endpoint(self) -> str:
        """Xero's token endpoint (code exchange, refresh)."""
        return f"{self.xero_identity_url.rstrip('/')}/connect/token"

    @property
    def xero_revocation_endpoint(self) -> str:
        """Xero's endpoint to revoke a refresh token."""
        return f"{self.xero_identity_url.rstrip('/')}/connect/revocation"

    @property
    def xero_connections_endpoint(self) -> str:
        """Xero's list of the organisations a token may reach."""
        return f"{self.xero_api_url.rstrip('/')}/connections"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
