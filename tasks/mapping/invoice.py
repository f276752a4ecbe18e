"""One m3ter bill -> one Xero invoice (or credit note), or the reason it is not sent.

Decisions, so that re-sending a regenerated bill updates the same Xero document:

- The number on the document (``InvoiceNumber``, ``CreditNoteNumber`` on a credit note) is what
  the integration's ``invoice_numbering`` says (``document_number``):

  - ``M3TER_INVOICE_NUMBER`` (the default): m3ter's ``sequentialInvoiceNumber``, the number the
    customer reads in m3ter. A bill without one (m3ter may give it only once the bill is
    approved, and gives none at all to an organisation without a ``billPrefix``) is numbered with
    its bill id: known in advance, unique, and clear of both m3ter's and Xero's sequences. Once
    m3ter numbers the bill, its next version renames the document in place (Xero lets an update
    change the number). ``Reference`` carries the bill id.
  - ``XERO_SEQUENCE``: no number is sent; Xero gives the next one of the organisation's invoice
    settings (``INV-0001`` / ``CN-0002``: one sequence for both kinds) and keeps it on updates.
    ``Reference`` carries the bill id.
  - ``BILL_ID`` (the behaviour before the option): the m3ter bill id, the same for every
    version; m3ter's number goes in ``Reference`` (else ``externalInvoiceReference``).

  So every document this integration makes carries its bill id as its number or as its
  ``Reference`` (both, for an unnumbered bill under m3ter's numbering): that is how the sync
  finds a document whose creation ended unknown, tells its own document from someone else's
  holding the same number, and matches Xero's answers to bills (``tasks.sync.unknown``). An
  update (by the document's Xero id) sends the number the option gives now; a document made
  under another option keeps its number until its bill changes.
- ``Date`` is the bill's ``externalInvoiceDate`` (m3ter's date for accounting), else its
  ``billDate``; ``DueDate`` is ``dueDate``, else ``Date`` + the account's ``daysBeforeBillDue``.
- ``CurrencyCode`` is the bill's currency, else the account's.
- A bill whose total is negative becomes an ``ACCRECCREDIT`` credit note with every amount negated
  (Xero's credit notes carry positive totals; ``kind="credit_note"``).
- Contact: by default ``{"ContactNumber": <m3ter account id>, "Name": <account name>}`` (Xero
  finds the contact by its number, or creates it by name). With "use external mapping account
  code", the Account -> Xero ``Contact`` external mapping gives ``{"ContactID": externalId}``;
  with "enforce", only a mapping linked to this integration counts, otherwise a linked one is
  preferred, then an unlinked one (``tasks.mapping.external``, the one finder for accounts and
  products). No usable mapping: outcome ``MISSING_ACCOUNT_MAPPING``.
- Lines: each carries its account code, item code, tax type and tracking from the product's
  Xero mappings, the customer's country and the integration's defaults (``tasks.mapping.coding``
  has the precedence).
  On a SUBMITTED or AUTHORISED document a line with neither account code nor item code would be
  refused by Xero, so the bill is not mapped: outcome ``MISSING_ACCOUNT_MAPPING`` naming the
  first such line and its product. A DRAFT goes without (Xero accepts drafts without codes).
- ``mappings`` holds every mapping the bill may need (Account -> Contact and Product -> Account,
  Item, TaxRate, TrackingOption); it is read once per call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from config.integration import IntegrationConfig, InvoiceNumbering
from tasks.m3ter.models import Account, Bill, ExternalMapping
from tasks.mapping.coding import Coder, missing_account_reason
from tasks.mapping.external import XeroMappings, find_mapping
from tasks.mapping.lines import build_line_items, document_total
from tasks.mapping.selection import account_allowed, bill_wanted, line_kept

__all__ = [
    "MAX_TEXT",
    "MappingResult",
    "Outcome",
    "document_number",
    "find_contact_mapping",
    "map_bill",
    "xero_contact",
]

#: Xero's longest ``InvoiceNumber`` (spec, Invoice: "max length = 255"), and ``Reference``
#: ("additional reference number (max length = 255)", the Invoices page of Xero's docs).
MAX_TEXT = 255


class Outcome(StrEnum):
    """What the mapper decided for a bill (the ledger records it)."""

    MAPPED = "MAPPED"
    SKIPPED = "SKIPPED"
    MISSING_ACCOUNT_MAPPING = "MISSING_ACCOUNT_MAPPING"


class MappingResult(BaseModel):
    """Either a Xero ``document`` (``kind`` invoice or credit_note) or why there is none."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    bill_id: str
    bill_version: int | None = None
    kind: Literal["invoice", "credit_note"] | None = None
    document: dict[str, Any] | None = None
    total: Decimal | None = None
    reason: str = ""

    @property
    def mapped(self) -> bool:
        """Whether the bill became a document."""
        return self.outcome is Outcome.MAPPED


def _skip(bill: Bill, outcome: Outcome, reason: str) -> MappingResult:
    return MappingResult(outcome=outcome, bill_id=bill.id, bill_version=bill.version, reason=reason)


def find_contact_mapping(
    config: IntegrationConfig,
    integration_id: str,
    account_id: str,
    mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]],
) -> ExternalMapping | None:
    """The Account -> Xero Contact mapping to use for ``account_id``, or None."""
    return find_mapping(
        config, integration_id, mappings, entity="Account", m3ter_id=account_id, table="Contact"
    )


def xero_contact(
    config: IntegrationConfig,
    integration_id: str,
    account: Account,
    mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]],
) -> dict[str, str] | None:
    """The invoice's ``Contact``; None when an external mapping is required but missing."""
    if config.use_external_mapping_account_code:
        mapping = find_contact_mapping(config, integration_id, account.id, mappings)
        return {"ContactID": mapping.external_id} if mapping else None
    contact = {"ContactNumber": account.id}
    if account.name:
        contact["Name"] = account.name[:255]
    return contact


def document_number(config: IntegrationConfig, bill: Bill) -> tuple[str | None, str | None]:
    """The document's (number, ``Reference``) under the integration's ``invoice_numbering``;
    None: not sent (Xero numbers it; no reference)."""
    m3ter_number = (bill.sequential_invoice_number or "").strip() or None
    if config.invoice_numbering is InvoiceNumbering.BILL_ID:
        reference = m3ter_number or bill.external_invoice_reference
        return bill.id[:MAX_TEXT], reference[:MAX_TEXT] if reference else None
    if config.invoice_numbering is InvoiceNumbering.XERO_SEQUENCE:
        return None, bill.id[:MAX_TEXT]
    return (m3ter_number or bill.id)[:MAX_TEXT], bill.id[:MAX_TEXT]


def _dates(bill: Bill, account: Account) -> tuple[dt.date | None, dt.date | None]:
    date = bill.external_invoice_date or bill.bill_date
    due = bill.due_date
    if due is None and date is not None and account.days_before_bill_due is not None:
        due = date + dt.timedelta(days=account.days_before_bill_due)
    return date, due


def map_bill(
    config: IntegrationConfig,
    integration_id: str,
    bill: Bill | dict[str, Any],
    account: Account | dict[str, Any],
    mappings: XeroMappings | Iterable[ExternalMapping | dict[str, Any]] = (),
) -> MappingResult:
    """Map one bill of ``account`` for the integration ``integration_id`` (pure, no I/O).

    ``mappings``: the Account -> Contact and Product -> Account, Item, TaxRate, TrackingOption
    mappings, as a list (read once) or a ``XeroMappings`` index built once for many bills.
    """
    bill = bill if isinstance(bill, Bill) else Bill.model_validate(bill)
    account = account if isinstance(account, Account) else Account.model_validate(account)
    if not account_allowed(config, account):
        return _skip(bill, Outcome.SKIPPED, f"account {account.id} is excluded by the integration")
    if not bill_wanted(config, bill):
        return _skip(
            bill,
            Outcome.SKIPPED,
            f"bill is {bill.status or 'not approved'}: only approved bills are sent",
        )
    lines = [li for li in bill.line_items or () if line_kept(config, li)]
    if not lines:
        return _skip(bill, Outcome.SKIPPED, "no lines left after the integration's exclusions")
    index = XeroMappings.of(mappings)
    contact = xero_contact(config, integration_id, account, index)
    if contact is None:
        return _skip(
            bill,
            Outcome.MISSING_ACCOUNT_MAPPING,
            f"no Xero Contact external mapping for account {account.id}"
            + (
                f" linked to integration {integration_id}"
                if config.enforce_external_mappings_for_config
                else ""
            ),
        )
    coder = Coder(config, integration_id, index, account)
    if config.invoice_status != "DRAFT":
        # A Xero line codes as its m3ter lines do (band lines: their line's; a per-product line:
        # its members', all alike), so checking the m3ter lines checks every Xero line.
        unbooked = next((li for li in lines if not coder(li).booked), None)
        if unbooked is not None:
            return _skip(bill, Outcome.MISSING_ACCOUNT_MAPPING, missing_account_reason(unbooked))
    currency = bill.currency or account.currency
    total = document_total(lines, currency)
    credit = total < 0
    items = build_line_items(
        lines,
        currency=currency,
        split=config.split_usage_line_items,
        sort=config.sort_line_items_by,
        sign=-1 if credit else 1,
        coding=coder,
    )
    date, due = _dates(bill, account)
    document: dict[str, Any] = {
        "Type": "ACCRECCREDIT" if credit else "ACCREC",
        "Contact": contact,
    }
    if date is not None:
        document["Date"] = date.isoformat()
    if due is not None:
        document["DueDate"] = due.isoformat()
    if currency:
        document["CurrencyCode"] = currency.upper()
    number, reference = document_number(config, bill)
    if number is not None:
        document["CreditNoteNumber" if credit else "InvoiceNumber"] = number
    if reference:
        document["Reference"] = reference
    document["Status"] = config.invoice_status
    document["LineAmountTypes"] = "Exclusive"
    document["LineItems"] = items
    return MappingResult(
        outcome=Outcome.MAPPED,
        bill_id=bill.id,
        bill_version=bill.version,
        kind="credit_note" if credit else "invoice",
        document=document,
        total=-total if credit else total,
    )
