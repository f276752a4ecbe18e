"""The sandbox's reads: a bill by id, and the list and search queries over its tables, paged
by an opaque ``nextToken`` that holds the position to resume the scan from, so walking 50,000
bills page by page costs one pass, not one pass per page."""

from __future__ import annotations

import base64
import threading
from datetime import date
from typing import Any

from sandbox.m3ter import search
from sandbox.m3ter.generator import BillRecord, render_bill


def encode_token(position: int) -> str:
    """The ``nextToken`` that resumes a scan at ``position``."""
    return base64.urlsafe_b64encode(f"pos:{position}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    """Position from a ``nextToken``; ``ValueError`` if it is not one of ours."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    prefix, _, pos = raw.partition(":")
    if prefix != "pos" or not pos.isdigit():
        raise ValueError("bad nextToken")
    return int(pos)


class Queries:
    """The read side of ``M3terSandbox`` (which sets the attributes below on reset)."""

    seed: int
    lock: threading.RLock
    accounts: list[dict[str, Any]]
    mappings: list[dict[str, Any]]
    bills: list[BillRecord]
    bill_index: dict[str, int]

    def record(self, bill_id: str) -> BillRecord:
        """The record of a bill; ``KeyError`` if unknown."""
        return self.bills[self.bill_index[bill_id]]

    def render(self, rec: BillRecord) -> dict[str, Any]:
        """The bill as served: a given bill as given, else rendered from the seed."""
        if rec.given is not None:
            return rec.given
        return render_bill(self.seed, rec, self.accounts[rec.account_index])

    def bill(self, bill_id: str) -> dict[str, Any]:
        """A bill as served; ``KeyError`` if unknown."""
        with self.lock:
            return self.render(self.record(bill_id))

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
        """List Bills: a page of the bills these filters keep, and the token for the next."""

        def keep(r: BillRecord) -> bool:
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
        """List Accounts: a page of the accounts with these ids and codes, and the next token."""

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
        """List External Mappings: a page of the mappings these filters keep, and the next
        token."""

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
