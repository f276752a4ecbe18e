"""The m3ter sandbox's data and behaviour, apart from HTTP so tests can call it directly: its
tables and their changes here, its reads in ``queries``, its tokens and faults in ``access``.

Accounts and mappings are kept as wire dicts; bills as compact ``BillRecord`` s rendered on
demand.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

from sandbox.m3ter import catalogue
from sandbox.m3ter import mappings as maps
from sandbox.m3ter.access import Counters, Fault, TokensAndFaults
from sandbox.m3ter.accounts import make_account
from sandbox.m3ter.generator import BillRecord, calculated_at, new_bill_record
from sandbox.m3ter.ids import integration_config_id, stable_id
from sandbox.m3ter.queries import Queries
from sandbox.m3ter.stamps import iso_ms, parse_instant

DEFAULT_ORG_ID = "5a6d0b1e-0000-4000-8000-000000000001"
DEFAULT_CLIENT_ID = "sandbox-m3ter-client"
DEFAULT_CLIENT_SECRET = "sandbox-m3ter-secret"  # noqa: S105 - a sandbox's published test secret


def _now() -> datetime:
    """Now, to the millisecond (as m3ter stamps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class M3terSandbox(Queries, TokensAndFaults):
    """One organisation's data, its single API client, its tokens and injected faults."""

    def __init__(
        self,
        *,
        seed: int = 1,
        accounts: int = 20,
        bills_per_account: int = 3,
        org_id: str = DEFAULT_ORG_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_ttl: int = 18000,
    ) -> None:
        self.seed = seed
        self.initial_accounts = accounts
        self.initial_bills_per_account = bills_per_account
        self.org_id = org_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.lock = threading.RLock()
        self.reset()

    # ---- lifecycle -----------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the generated data for the seed; tokens, faults and counters cleared."""
        with self.lock:
            self.accounts: list[dict[str, Any]] = []
            self.account_index: dict[str, int] = {}
            self.mappings: list[dict[str, Any]] = []
            self.bills: list[BillRecord] = []
            self.bill_index: dict[str, int] = {}
            self.tokens: dict[str, float] = {}
            self.faults: list[Fault] = []
            self.counters = Counters()
            self._next_bill_number = 0
            self.started_at = _now()
            self._seeding = True  # the seed's own bills keep their calculation time
            # The catalogue's mappings first: the organisation's products exist before accounts.
            self.mappings.extend(maps.product_mappings(self.seed))
            self.add_generated_accounts(self.initial_accounts, self.initial_bills_per_account)
            self._seeding = False

    # ---- data ----------------------------------------------------------------------------
    def add_generated_accounts(
        self, count: int, bills_per_account: int = 0, *, modified_at: datetime | None = None
    ) -> list[str]:
        """Generate ``count`` more accounts (with mappings and bills); returns their ids.

        The bills are new, so last modified now, unless ``modified_at`` says when their bill
        run was (a benchmark's "bills calculated an hour ago")."""
        with self.lock:
            ids: list[str] = []
            for _ in range(count):
                index = len(self.accounts)
                account = make_account(self.seed, index)
                self._add_account(account)
                self.mappings.extend(maps.make_mappings(self.seed, index))
                for period in range(bills_per_account):
                    self._add_record(
                        new_bill_record(self.seed, self._next_bill_number, index, period),
                        modified_at,
                    )
                ids.append(account["id"])
            return ids

    def add_account(self, account: dict[str, Any]) -> str:
        """Add a given account (wire dict; ``id`` generated if missing)."""
        with self.lock:
            account = dict(account)
            account.setdefault("id", stable_id(self.seed, "given-account", len(self.accounts)))
            account.setdefault("version", 1)
            self._add_account(account)
            return str(account["id"])

    def _add_account(self, account: dict[str, Any]) -> None:
        self.account_index[account["id"]] = len(self.accounts)
        self.accounts.append(account)

    def add_generated_bills(
        self,
        count: int,
        *,
        account_ids: list[str] | None = None,
        status: str | None = None,
        first_period: int = 0,
        modified_at: datetime | None = None,
    ) -> list[str]:
        """``count`` more generated bills spread over the given (or all) accounts."""
        with self.lock:
            targets = account_ids or [a["id"] for a in self.accounts]
            if not targets:
                raise ValueError("no accounts to bill")
            ids = []
            for i in range(count):
                acc = targets[i % len(targets)]
                period = first_period + i // len(targets)
                rec = new_bill_record(
                    self.seed, self._next_bill_number, self.account_index[acc], period
                )
                rec.account_id = acc
                if status:
                    rec.status = status
                    rec.locked = rec.locked and status == "APPROVED"
                self._add_record(rec, modified_at)
                ids.append(rec.id)
            return ids

    def add_bill(self, bill: dict[str, Any]) -> str:
        """Add a given bill (wire dict, served as is apart from ``id``/``version`` defaults);
        ``ValueError`` if its ``dtLastModified`` is not an ISO 8601 date-time."""
        with self.lock:
            bill = dict(bill)
            number = self._next_bill_number
            bill.setdefault("id", stable_id(self.seed, "given-bill", number))
            bill.setdefault("version", 1)
            bill.setdefault("status", "PENDING")
            bill.setdefault("locked", False)
            # Kept as given (an explicit null too: a bill m3ter sent without one); else now.
            stamp = bill.setdefault("dtLastModified", iso_ms(_now()))
            modified_at = parse_instant(str(stamp)) if stamp else None
            bill_date = date.fromisoformat(bill["billDate"]) if bill.get("billDate") else None
            acc = bill.get("accountId") or ""
            rec = BillRecord(
                id=bill["id"],
                number=number,
                account_index=self.account_index.get(acc, -1),
                period=-1,
                version=int(bill["version"]),
                status=bill["status"],
                locked=bool(bill["locked"]),
                bill_date=bill_date or date(1970, 1, 1),
                account_id=acc,
                given=bill,
                modified_at=modified_at,
            )
            self._add_record(rec)
            return rec.id

    def _add_record(self, rec: BillRecord, modified_at: datetime | None = None) -> None:
        """A new bill is last modified now (or ``modified_at``); the seed's own bills keep
        their calculation time, capped at the sandbox's start for periods not over yet so that
        it stays put (a moving "now" would reorder a search between its pages)."""
        if rec.given is None and not self._seeding:
            rec.modified_at = modified_at or _now()
        elif rec.given is None and calculated_at(rec) > self.started_at:
            rec.modified_at = self.started_at
        self.bill_index[rec.id] = len(self.bills)
        self.bills.append(rec)
        self._next_bill_number += 1

    def add_mapping(self, mapping: dict[str, Any]) -> dict[str, Any]:
        """Add one external mapping (``ExternalMappingResponse`` fields). An Account mapping
        defaults to Xero ``Contact``; a ``Product`` one needs ``externalTable`` (``Account``,
        ``Item``, ``TaxRate`` or ``TrackingOption``) and names its product by ``m3terId`` or by
        ``productCode`` (a catalogue code: ``KeyError`` if unknown). ``ValueError`` when a
        required field is missing."""
        entity = mapping.get("m3terEntity", "Account")
        system = mapping.get("externalSystem", maps.XERO_SYSTEM)
        table = mapping.get("externalTable")
        m3ter_id = mapping.get("m3terId")
        if entity == "Product":
            if not table:
                tables = ", ".join(sorted(maps.PRODUCT_TABLES))
                raise ValueError(f"a Product mapping needs externalTable (Xero: {tables})")
            if not m3ter_id and mapping.get("productCode"):
                m3ter_id = catalogue.product_by_code(self.seed, str(mapping["productCode"])).id
        if not m3ter_id:
            raise ValueError("m3terId is required")
        if not mapping.get("externalId"):
            raise ValueError("externalId is required")
        with self.lock:
            full = maps.make_mapping(
                self.seed,
                mapping_id=mapping.get("id")
                or stable_id(self.seed, "given-mapping", len(self.mappings)),
                m3ter_id=str(m3ter_id),
                external_id=str(mapping["externalId"]),
                integration_config=mapping.get("integrationConfigId"),
                system=system,
                table=table or maps.XERO_CONTACT_TABLE,
                entity=entity,
            )
            self.mappings.append(full)
            return full

    @staticmethod
    def _touch(rec: BillRecord, **given: Any) -> None:
        """A change: the bill is last modified now (its ``given`` wire dict too)."""
        rec.modified_at = _now()
        if rec.given is not None:
            rec.given = {**rec.given, **given, "dtLastModified": iso_ms(rec.modified_at)}

    def regenerate(self, bill_id: str) -> dict[str, Any]:
        """Recalculate a bill: version + 1 and new amounts (a given bill keeps its lines)."""
        with self.lock:
            rec = self.record(bill_id)
            rec.version += 1
            self._touch(rec, version=rec.version)
            return self.render(rec)

    def recalculate(self, bill_id: str, line_items: list[dict[str, Any]]) -> dict[str, Any]:
        """Recalculate a bill with new lines (a correction; negative amounts make it a credit):
        version + 1, served from now on as the bill it was with these lines."""
        with self.lock:
            rec = self.record(bill_id)
            rec.given = {**self.render(rec), "lineItems": line_items}
            rec.version += 1
            self._touch(rec, version=rec.version)
            return self.render(rec)

    def approve(self, bill_id: str) -> dict[str, Any]:
        """Approve a bill: status ``APPROVED``, approved and last modified now."""
        with self.lock:
            rec = self.record(bill_id)
            rec.status = "APPROVED"
            rec.approved_at = datetime.now(UTC).replace(microsecond=0)
            self._touch(rec, status="APPROVED")
            return self.render(rec)

    def state(self) -> dict[str, Any]:
        """A summary for ``GET /_sandbox/state``."""
        with self.lock:
            by_status: dict[str, int] = {}
            for r in self.bills:
                by_status[r.status] = by_status.get(r.status, 0) + 1
            return {
                "orgId": self.org_id,
                "seed": self.seed,
                "accounts": len(self.accounts),
                "bills": len(self.bills),
                "billsByStatus": by_status,
                "lockedBills": sum(1 for r in self.bills if r.locked),
                "mappings": len(self.mappings),
                "integrationConfigId": integration_config_id(self.seed),
                "pendingFaults": [f.__dict__ for f in self.faults],
                "counters": {
                    "apiCalls": self.counters.api_calls,
                    "tokenRequests": self.counters.token_requests,
                    "faultsServed": self.counters.faults_served,
                    "unauthorised": self.counters.unauthorised,
                    "paths": dict(self.counters.paths),
                },
                "tokenTtl": self.token_ttl,
            }
