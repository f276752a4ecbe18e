"""The m3ter sandbox's data and behaviour, apart from HTTP so tests can call it directly.

Accounts and mappings are kept as wire dicts; bills as compact ``BillRecord`` s rendered on
demand. Paging uses an opaque ``nextToken`` holding the position to resume the scan from, so
walking 50,000 bills page by page costs one pass, not one pass per page.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.m3ter import catalogue, search
from sandbox.m3ter import generator as gen
from sandbox.m3ter import mappings as maps

DEFAULT_ORG_ID = "5a6d0b1e-0000-4000-8000-000000000001"
DEFAULT_CLIENT_ID = "sandbox-m3ter-client"
DEFAULT_CLIENT_SECRET = "sandbox-m3ter-secret"  # noqa: S105 - a sandbox's published test secret


@dataclass
class Fault:
    """The next ``count`` API calls answer ``status`` (after ``delay`` seconds, if set)."""

    status: int = 503
    count: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    include_token: bool = False


@dataclass
class Counters:
    api_calls: int = 0
    token_requests: int = 0
    faults_served: int = 0
    unauthorised: int = 0
    paths: dict[str, int] = field(default_factory=dict)


def encode_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    """Position from a ``nextToken``; ``ValueError`` if it is not one of ours."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    prefix, _, pos = raw.partition(":")
    if prefix != "pos" or not pos.isdigit():
        raise ValueError("bad nextToken")
    return int(pos)


def _now() -> datetime:
    """Now, to the millisecond (as m3ter stamps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class M3terSandbox:
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
            self.bills: list[gen.BillRecord] = []
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
                account = gen.make_account(self.seed, index)
                self._add_account(account)
                self.mappings.extend(maps.make_mappings(self.seed, index))
                for period in range(bills_per_account):
                    self._add_record(
                        gen.new_bill_record(self.seed, self._next_bill_number, index, period),
                        modified_at,
                    )
                ids.append(account["id"])
            return ids

    def add_account(self, account: dict[str, Any]) -> str:
        """Add a given account (wire dict; ``id`` generated if missing)."""
        with self.lock:
            account = dict(account)
            account.setdefault("id", gen.stable_id(self.seed, "given-account", len(self.accounts)))
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
                rec = gen.new_bill_record(
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
            bill.setdefault("id", gen.stable_id(self.seed, "given-bill", number))
            bill.setdefault("version", 1)
            bill.setdefault("status", "PENDING")
            bill.setdefault("locked", False)
            # Kept as given (an explicit null too: a bill m3ter sent without one); else now.
            stamp = bill.setdefault("dtLastModified", gen.iso_ms(_now()))
            modified_at = gen.parse_instant(str(stamp)) if stamp else None
            bill_date = date.fromisoformat(bill["billDate"]) if bill.get("billDate") else None
            acc = bill.get("accountId") or ""
            rec = gen.BillRecord(
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

    def _add_record(self, rec: gen.BillRecord, modified_at: datetime | None = None) -> None:
        """A new bill is last modified now (or ``modified_at``); the seed's own bills keep
        their calculation time, capped at the sandbox's start for periods not over yet so that
        it stays put (a moving "now" would reorder a search between its pages)."""
        if rec.given is None and not self._seeding:
            rec.modified_at = modified_at or _now()
        elif rec.given is None and gen.calculated_at(rec) > self.started_at:
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
                or gen.stable_id(self.seed, "given-mapping", len(self.mappings)),
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
    def _touch(rec: gen.BillRecord, **given: Any) -> None:
        """A change: the bill is last modified now (its ``given`` wire dict too)."""
        rec.modified_at = _now()
        if rec.given is not None:
            rec.given = {**rec.given, **given, "dtLastModified": gen.iso_ms(rec.modified_at)}

    def record(self, bill_id: str) -> gen.BillRecord:
        """The record of a bill; ``KeyError`` if unknown."""
        return self.bills[self.bill_index[bill_id]]

    def render(self, rec: gen.BillRecord) -> dict[str, Any]:
        if rec.given is not None:
            return rec.given
        return gen.render_bill(self.seed, rec, self.accounts[rec.account_index])

    def bill(self, bill_id: str) -> dict[str, Any]:
        """A bill as served; ``KeyError`` if unknown."""
        with self.lock:
            return self.render(self.record(bill_id))

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
        with self.lock:
            rec = self.record(bill_id)
            rec.status = "APPROVED"
            rec.approved_at = datetime.now(UTC).replace(microsecond=0)
            self._touch(rec, status="APPROVED")
            return self.render(rec)

    # ---- queries (list endpoints) ----------------------------------------------------------
    def page(
        self, items: list[Any], keep: Any, start: int, size: int
    ) -> tuple[list[Any], str | None]:
        """Scan ``items`` from ``start`` for ``size`` matches; the token resumes after them."""
        out: list[Any] = []
        pos = start
        n = len(items)
        while pos < n and len(out) < size:
            if keep(items[pos]):
                out.append(items[pos])
            pos += 1
        # Skip to the next match so that a last full page does not hand out a dead token.
        while pos < n and not keep(items[pos]):
            pos += 1
        return out, (encode_token(pos) if pos < n else None)

    def list_bills(
        self,
        *,
        start: int,
        size: int,
        status: str | None = None,
        account_id: str | None = None,
        bill_date: date | None = None,
        bill_date_start: date | None = None,
        bill_date_end: date | None = None,
        ids: set[str] | None = None,
        exclude_locked: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        def keep(r: gen.BillRecord) -> bool:
            return (
                (status is None or r.status == status)
                and (account_id is None or r.account_id == account_id)
                and (bill_date is None or r.bill_date == bill_date)
                and (bill_date_start is None or r.bill_date >= bill_date_start)
                and (bill_date_end is None or r.bill_date < bill_date_end)
                and (ids is None or r.id in ids)
                and not (exclude_locked and r.locked)
            )

        with self.lock:
            recs, token = self.page(self.bills, keep, start, size)
            return [self.render(r) for r in recs], token

    def search_bills(
        self, query: search.Query, sort: search.Sort, start: int, size: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Search Bills: filter and sort on the records, render only the page returned."""
        with self.lock:
            found = [r for r in self.bills if query.matches(r)] if query.tests else self.bills
            found = sort.apply(found)
            page = found[start : start + size]
            after = start + len(page)
            return [self.render(r) for r in page], (after if after < len(found) else None)

    def list_accounts(
        self, *, start: int, size: int, ids: set[str] | None = None, codes: set[str] | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        def keep(a: dict[str, Any]) -> bool:
            return (ids is None or a["id"] in ids) and (codes is None or a.get("code") in codes)

        with self.lock:
            return self.page(self.accounts, keep, start, size)

    def list_mappings(
        self,
        *,
        start: int,
        size: int,
        external_system: str | None = None,
        external_table: str | None = None,
        external_id: str | None = None,
        integration_config_id: str | None = None,
        m3ter_entity: str | None = None,
        m3ter_ids: set[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        def keep(m: dict[str, Any]) -> bool:
            return (
                (external_system is None or m["externalSystem"] == external_system)
                and (external_table is None or m["externalTable"] == external_table)
                and (external_id is None or m["externalId"] == external_id)
                and (
                    integration_config_id is None
                    or m.get("integrationConfigId") == integration_config_id
                )
                and (m3ter_entity is None or m["m3terEntity"] == m3ter_entity)
                and (m3ter_ids is None or m["m3terId"] in m3ter_ids)
            )

        with self.lock:
            return self.page(self.mappings, keep, start, size)

    # ---- auth and faults ---------------------------------------------------------------------
    def issue_token(self) -> dict[str, Any]:
        with self.lock:
            self.counters.token_requests += 1
            token = secrets.token_urlsafe(24)
            self.tokens[token] = time.monotonic() + self.token_ttl
            return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(token)
            return expiry is not None and expiry > time.monotonic()

    def expire_tokens(self) -> None:
        """Make every issued token expire now (tests of re-authentication)."""
        with self.lock:
            self.tokens.clear()

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, *, token_endpoint: bool) -> Fault | None:
        """The fault to apply to this call, if any, counting it down."""
        with self.lock:
            for fault in self.faults:
                if token_endpoint and not fault.include_token:
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                self.counters.faults_served += 1
                return fault
            return None

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
                "integrationConfigId": gen.integration_config_id(self.seed),
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
