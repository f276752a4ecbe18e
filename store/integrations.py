"""The integration store: configurations, their connected credential, and disabled state.

The configuration is validated (``config.integration.validate_config``) before anything is
written, so bad input leaves stored data as it was. Status is derived, never stored twice:
DISABLED when ``disabled_at`` is set, else CONNECTED with a credential, else NOT_CONNECTED.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from config.errors import InvalidInput, NotFound
from config.integration import IntegrationConfig, IntegrationStatus, validate_config
from store.credentials import CredentialStatus
from store.schema import credentials as ct
from store.schema import integrations as t


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
    def create(self, data: dict[str, Any] | IntegrationConfig) -> IntegrationView:
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
        except IntegrityError as exc:
            raise InvalidInput(
                f"an integration named {config.name!r} already exists for "
                f"{config.destination} {config.entity_type}",
                field="name",
            ) from exc
        return self.get(integration_id)

    def update(self, id_or_name: str, changes: dict[str, Any]) -> IntegrationView:
        """Apply ``changes`` (option → new value) to the stored configuration, all or nothing."""
        current = self.get(id_or_name)
        unknown = set(changes) - set(IntegrationConfig.model_fields)
        if unknown:
            raise InvalidInput(
                f"unknown option(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
            )
        merged = {**current.config.model_dump(mode="json"), **changes}
        config = self._validate(merged)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(t)
                    .where(t.c.id == current.id)
                    .values(
                        name=config.name,
                        config_json=config.model_dump_json(),
                        updated_at=self.clock(),
                    )
                )
        except IntegrityError as exc:
            raise InvalidInput(
                f"an integration named {config.name!r} already exists", field="name"
            ) from exc
        return self.get(current.id)

    def delete(self, id_or_name: str) -> IntegrationView:
        view = self.get(id_or_name)
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.id == view.id))
        return view

    def connect(self, id_or_name: str, credential: str) -> IntegrationView:
        """Connect (or change) the credential; only an ACTIVE one of the same destination."""
        view = self.get(id_or_name)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ct).where(or_(ct.c.id == credential, ct.c.name == credential))
            ).first()
        if row is None or (
            row.status == CredentialStatus.PENDING.value
            and (row.pending_expires_at or 0) <= self.clock()
        ):
            raise InvalidInput(f"no credential {credential!r}", field="credential")
        if row.destination != view.config.destination:
            raise InvalidInput(
                f"credential {row.name!r} is for {row.destination}, "
                f"not {view.config.destination}",
                field="credential",
            )
        if row.entity_type != view.config.entity_type:
            raise InvalidInput(
                f"credential {row.name!r} is for {row.entity_type}, not {view.config.entity_type}",
                field="credential",
            )
        if row.status != CredentialStatus.ACTIVE.value:
            hint = (
                "has not completed consent"
                if row.status == CredentialStatus.PENDING.value
                else "needs to be reconnected to Xero"
            )
            raise InvalidInput(f"credential {row.name!r} {hint}", field="credential")
        self._set(view.id, credential_id=row.id)
        return self.get(view.id)

    def disconnect(self, id_or_name: str) -> IntegrationView:
        view = self.get(id_or_name)
        self._set(view.id, credential_id=None)
        return self.get(view.id)

    def disable(self, id_or_name: str, reason: str) -> IntegrationView:
        view = self.get(id_or_name)
        self._set(view.id, disabled_at=self.clock(), disabled_reason=reason.strip() or "disabled")
        return self.get(view.id)

    def enable(self, id_or_name: str) -> IntegrationView:
        view = self.get(id_or_name)
        self._set(view.id, disabled_at=None, disabled_reason=None, consecutive_failures=0)
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
        with self.engine.connect() as conn:
            rows = conn.execute(
                self._query().where(or_(t.c.id == id_or_name, t.c.name == id_or_name))
            ).all()
        if not rows:
            raise NotFound(f"no integration {id_or_name!r}")
        by_id = [r for r in rows if r.id == id_or_name]
        return self._view(by_id[0] if by_id else rows[0])

    def list(self) -> list[IntegrationView]:
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
