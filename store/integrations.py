"""The integration store: configurations, their connected credential, and disabled state.

The configuration is validated (``config.integration.validate_config``) before anything is
written, so bad input leaves stored data as it was. Status is derived, never stored twice:
DISABLED when ``disabled_at`` is set, else CONNECTED with a credential, else NOT_CONNECTED.

Two integrations on one Xero organisation must not send bills of the same accounts: the invoice
number is the m3ter bill id, so each would overwrite the other's invoices. Every write that could
make them meet (connect or change the credential, create with one, new account lists, enable)
checks it in the same transaction as the write and refuses with ``InvalidInput``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from config.errors import InvalidInput, NotFound
from config.integration import (
    IntegrationConfig,
    IntegrationStatus,
    shared_accounts,
    validate_config,
)
from store.credential_types import CredentialStatus
from store.schema import credentials as ct
from store.schema import integrations as t


def _lock_key(tenant_id: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory lock on one Xero organisation."""
    digest = hashlib.sha256(f"billsync-tenant:{tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class IntegrationView(BaseModel):
    """An integration as a person sees it: its id, status and every option."""

    id: str
    name: str
    status: IntegrationStatus
    status_detail: str
    credential_id: str | None = None
    credential_name: str | None = None
    disabled_at: float | None = None
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    config: IntegrationConfig
    created_at: float
    updated_at: float


class IntegrationStore:
    """Integrations in the project database."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    # -- writes ----------------------------------------------------------------------------
    def create(
        self, data: dict[str, Any] | IntegrationConfig, credential: str | None = None
    ) -> IntegrationView:
        """A new integration; with ``credential``, connected to it in the same transaction
        (a refused credential or an overlap with another integration stores nothing)."""
        config = self._validate(data)
        now = self.clock()
        integration_id = str(uuid.uuid4())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        id=integration_id,
                        name=config.name,
                        entity_type=config.entity_type,
                        destination=config.destination,
                        config_json=config.model_dump_json(),
                        consecutive_failures=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
                if credential:
                    self._attach(conn, integration_id, config, credential)
        except IntegrityError as exc:
            raise InvalidInput(
                f"an integration named {config.name!r} already exists for "
                f"{config.destination} {config.entity_type}",
                field="name",
            ) from exc
        return self.get(integration_id)

    def update(self, id_or_name: str, changes: dict[str, Any]) -> IntegrationView:
        """Apply ``changes`` (option → new value) to the stored configuration, all or nothing.

        New account lists of a connected integration must not overlap another integration's
        on the same Xero organisation (checked in the same transaction as the write)."""
        current, config = self.merged(id_or_name, changes)
        moved = [
            f
            for f in ("account_ids", "restricted_account_ids")
            if getattr(config, f) != getattr(current.config, f)
        ]
        try:
            with self.engine.begin() as conn:
                written = conn.execute(
                    update(t)
                    .where(t.c.id == current.id)
                    .values(
                        name=config.name,
                        config_json=config.model_dump_json(),
                        updated_at=self.clock(),
                    )
                )
                if written.rowcount != 1:
                    raise NotFound(f"no integration {id_or_name!r}")
                if moved:
                    self._refuse_overlap(conn, current.id, field=moved[0])
        except IntegrityError as exc:
            raise InvalidInput(
                f"an integration named {config.name!r} already exists", field="name"
            ) from exc
        return self.get(current.id)

    def merged(
        self, id_or_name: str, changes: dict[str, Any]
    ) -> tuple[IntegrationView, IntegrationConfig]:
        """The integration as stored, and its configuration with ``changes`` applied and
        checked (``InvalidInput`` naming the field); nothing is written."""
        current = self.get(id_or_name)
        if not isinstance(changes, dict):
            raise InvalidInput("expected option → new value", field="changes")
        unknown = set(changes) - set(IntegrationConfig.model_fields)
        if unknown:
            raise InvalidInput(
                f"unknown option(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
            )
        merged = {**current.config.model_dump(mode="json"), **changes}
        return current, self._validate(merged)

    def delete(self, id_or_name: str) -> IntegrationView:
        """Delete the integration (its ledger rows go with it)."""
        view = self.get(id_or_name)
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.id == view.id))
        return view

    def connect(self, id_or_name: str, credential: str) -> IntegrationView:
        """Connect (or change) the credential; only an ACTIVE one of the same destination, and
        only if no other integration on that Xero organisation sends bills of the same
        accounts (their invoices would overwrite each other)."""
        view = self.get(id_or_name)
        with self.engine.begin() as conn:
            self._attach(conn, view.id, view.config, credential)
        return self.get(view.id)

    def _attach(
        self, conn: Connection, integration_id: str, config: IntegrationConfig, credential: str
    ) -> None:
        """Inside a transaction: point the integration at ``credential`` after checking it."""
        # Write first: on SQLite that takes the database's write lock (on PostgreSQL the row's),
        # so what is read below cannot change before this transaction ends.
        touched = conn.execute(
            update(t).where(t.c.id == integration_id).values(updated_at=self.clock())
        )
        if touched.rowcount != 1:
            raise NotFound(f"no integration {integration_id!r}")
        row = conn.execute(
            select(ct).where(or_(ct.c.id == credential, ct.c.name == credential))
        ).first()
        if row is None or (
            row.status == CredentialStatus.PENDING.value
            and (row.pending_expires_at or 0) <= self.clock()
        ):
            raise InvalidInput(f"no credential {credential!r}", field="credential")
        if row.destination != config.destination:
            raise InvalidInput(
                f"credential {row.name!r} is for {row.destination}, not {config.destination}",
                field="credential",
            )
        if row.entity_type != config.entity_type:
            raise InvalidInput(
                f"credential {row.name!r} is for {row.entity_type}, not {config.entity_type}",
                field="credential",
            )
        if row.status != CredentialStatus.ACTIVE.value:
            hint = (
                "has not completed consent"
                if row.status == CredentialStatus.PENDING.value
                else "needs to be reconnected to Xero"
            )
            raise InvalidInput(f"credential {row.name!r} {hint}", field="credential")
        conn.execute(update(t).where(t.c.id == integration_id).values(credential_id=row.id))
        self._refuse_overlap(conn, integration_id, field="credential")

    def _refuse_overlap(self, conn: Connection, integration_id: str, *, field: str) -> None:
        """Refuse (``InvalidInput``) when another integration connected to the same Xero
        organisation sends bills of some of the same accounts: the invoice number is the m3ter
        bill id, so the two would overwrite each other's invoices. Call after this transaction
        wrote the integration's row; disabled integrations count (they are enabled again)."""
        mine = conn.execute(
            select(t.c.config_json, ct.c.tenant_id, ct.c.tenant_name)
            .select_from(t.join(ct, t.c.credential_id == ct.c.id))
            .where(t.c.id == integration_id)
        ).first()
        if mine is None or not mine.tenant_id:
            return
        if conn.dialect.name == "postgresql":
            # One writer per organisation at a time: a concurrent connect to the same tenant
            # waits here, then reads this one's committed row.
            conn.execute(select(func.pg_advisory_xact_lock(_lock_key(mine.tenant_id))))
        others = conn.execute(
            select(t.c.name, t.c.config_json)
            .select_from(t.join(ct, t.c.credential_id == ct.c.id))
            .where(ct.c.tenant_id == mine.tenant_id, t.c.id != integration_id)
            .order_by(t.c.created_at)
        ).all()
        config = IntegrationConfig.model_validate_json(mine.config_json)
        for other in others:
            theirs = IntegrationConfig.model_validate_json(other.config_json)
            shared = shared_accounts(config, theirs)
            if shared is not None:
                org = mine.tenant_name or mine.tenant_id
                raise InvalidInput(
                    f"integration {other.name!r} already sends bills of the same accounts to "
                    f"Xero organisation {org!r} (shared: {shared.describe()}); the two would "
                    "overwrite each other's invoices: give them disjoint accounts or connect a "
                    "credential of another organisation",
                    field=field,
                )

    def disconnect(self, id_or_name: str) -> IntegrationView:
        """Take the integration's credential away: syncs skip it until one is connected."""
        view = self.get(id_or_name)
        self._set(view.id, credential_id=None)
        return self.get(view.id)

    def disable(self, id_or_name: str, reason: str) -> IntegrationView:
        """Disable the integration, with the reason and the time."""
        view = self.get(id_or_name)
        self._set(view.id, disabled_at=self.clock(), disabled_reason=reason.strip() or "disabled")
        return self.get(view.id)

    def enable(self, id_or_name: str) -> IntegrationView:
        """Enable again; refused while its accounts overlap another integration's on the same
        Xero organisation (only data stored before that rule could)."""
        view = self.get(id_or_name)
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == view.id)
                .values(
                    disabled_at=None,
                    disabled_reason=None,
                    consecutive_failures=0,
                    updated_at=self.clock(),
                )
            )
            self._refuse_overlap(conn, view.id, field="integration")
        return self.get(view.id)

    def record_run(self, integration_id: str, *, failed: bool) -> int:
        """Count failing runs in a row (reset by a good one); returns the new count."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == integration_id)
                .values(
                    consecutive_failures=(t.c.consecutive_failures + 1) if failed else 0,
                    updated_at=self.clock(),
                )
            )
            return int(
                conn.execute(
                    select(t.c.consecutive_failures).where(t.c.id == integration_id)
                ).scalar_one()
            )

    def _set(self, integration_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.id == integration_id).values(**values, updated_at=self.clock())
            )

    @staticmethod
    def _validate(data: dict[str, Any] | IntegrationConfig) -> IntegrationConfig:
        if isinstance(data, IntegrationConfig):
            data = data.model_dump(mode="json")
        return validate_config(dict(data))

    # -- reads -----------------------------------------------------------------------------
    def _query(self):  # type: ignore[no-untyped-def]
        return select(t, ct.c.name.label("credential_name")).select_from(
            t.outerjoin(ct, t.c.credential_id == ct.c.id)
        )

    def get(self, id_or_name: str) -> IntegrationView:
        """The integration by id or name (``NotFound`` otherwise)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._query().where(or_(t.c.id == id_or_name, t.c.name == id_or_name))
            ).all()
        if not rows:
            raise NotFound(f"no integration {id_or_name!r}")
        by_id = [r for r in rows if r.id == id_or_name]
        return self._view(by_id[0] if by_id else rows[0])

    def list(self) -> list[IntegrationView]:
        """Every integration, whatever its status."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._query().order_by(t.c.created_at)).all()
        return [self._view(r) for r in rows]

    @staticmethod
    def _view(row: Any) -> IntegrationView:
        if row.disabled_at is not None:
            status = IntegrationStatus.DISABLED
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row.disabled_at))
            detail = f"Disabled {when}: {row.disabled_reason}"
        elif row.credential_id:
            status = IntegrationStatus.CONNECTED
            detail = f"Connected with credential {row.credential_name}"
        else:
            status = IntegrationStatus.NOT_CONNECTED
            detail = "Not connected: connect a Xero credential to send bills"
        return IntegrationView(
            id=row.id,
            name=row.name,
            status=status,
            status_detail=detail,
            credential_id=row.credential_id,
            credential_name=row.credential_name,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
            consecutive_failures=row.consecutive_failures,
            config=IntegrationConfig.model_validate(json.loads(row.config_json)),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
