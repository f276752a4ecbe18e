"""Xero's rules for an invoice or credit note, checked against the organisation's books.

Every message is Xero's own wording where it could be found, with its source next to it; where
the wording or the behaviour could not be found the comment says so. "Draft" below means a
document whose resulting status is DRAFT: Xero lets a draft lack what an approved document needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sandbox.xero.books import Account, Books, Contact, Organisation, TaxRate, TrackingCategory
from sandbox.xero.lines import Invalid, Line, guid

# "Account code must be specified" was the old wording; integrators report the current one
# (e.g. https://github.com/calcinai/xero-php/issues/230 for the old, issue 16 and several
# integrations' comments for the new). Drafts may leave it out
# (https://github.com/XeroAPI/xero-node/issues/398: "setting the Invoice Status to DRAFT ...
# allows the creation of an invoice without an account code on the line item").
ACCOUNT_REQUIRED = "Account code or ID must be specified"
# Unknown code on an approved document: https://github.com/XeroAPI/Xero-NetStandard/issues/364.
ACCOUNT_NOT_VALID = "Account code '{code}' is not a valid code for this document."
# Archived code: reported by integrators (https://help.yourtradebase.com/article/158-xero-error-
# messages).
ACCOUNT_ARCHIVED = (
    "Account code '{code}' has been archived, or has been deleted. Each line item must "
    "reference a valid account."
)
# On a draft Xero strips the code and warns; the wording is the spec's own example of a
# ``Warnings`` entry (xero_accounting.yaml, ManualJournals) and what integrators see on invoices
# (https://github.com/XeroAPI/Xero-Java/issues/370). That an archived code is stripped the same
# way as an unknown one is assumed.
ACCOUNT_REMOVED = (
    "Account code '{code}' has been removed as it does not match a recognised account."
)
# An unknown AccountID: Xero's wording was not found; worded like the unknown code.
ACCOUNT_ID_NOT_VALID = "Account ID '{id}' is not a valid account for this document."
# https://github.com/XeroAPI/Xero-Java/issues/336 (both messages, word for word).
TAX_NOT_VALID = (
    "The TaxType code {tax} does not exist or cannot be used for this type of transaction."
)
TAX_NOT_FOR_ACCOUNT = "The TaxType code '{tax}' cannot be used with account code '{code}'."
# Unknown items are refused (https://github.com/freakboy3742/pyxero/issues/11: "if you are
# wanting to use an item code in an invoice, you have to create the item first"); Xero's
# wording was not found, this one is the issue's.
ITEM_NOT_VALID = "Item code '{code}' is not valid"
# https://github.com/calcinai/xero-php/pull/386 (seen on a contact's sales tracking).
NO_TRACKING_CATEGORY = "There is no ACTIVE tracking category with the name '{name}'"
# Not found for options: worded like the category's.
NO_TRACKING_OPTION = "There is no ACTIVE tracking option with the name '{name}'"
# "Any LineItem can have a maximum of 2 <TrackingCategory> elements" (spec, LineItem.Tracking);
# the refusal's wording was not found.
TOO_MUCH_TRACKING = "A line item can have a maximum of 2 tracking categories"
SAME_CATEGORY_TWICE = "The tracking category '{name}' can only be used once per line item"
DESCRIPTION_REQUIRED = "Description needs to be at least 1 char long"  # spec, LineItem

CONTACT_REQUIRED = "A Contact must be specified for this type of transaction"
# The spec's own example (xero_accounting.yaml, Contacts).
CONTACT_UNIDENTIFIED = (
    "The Contact must contain at least 1 of the following elements to identify the contact: "
    "Name, ContactID, ContactNumber"
)
# A new contact needs a name: https://github.com/waynerobinson/xeroizer/pull/380 (seen on
# PUT Contacts with only a ContactNumber; that an invoice's contact gets the same is assumed).
CONTACT_NAME_EMPTY = "Contact Name cannot be empty."
# Reported word for word by integrators, e.g. https://help.re-leased.com/support/solutions/
# articles/8000045210 and https://help.yourtradebase.com/article/158-xero-error-messages.
CONTACT_ARCHIVED = (
    "The contact with the specified contact details has been archived. The contact must be "
    "un-archived before creating new invoices or credit notes."
)
# "The currency code is not valid" is the sandbox's own for a malformed code (Xero's wording not
# found); an unsubscribed one is reported word for word by integrators (issue 16; e.g. Expensify's
# XRO068 "Organization is not subscribed to currency x").
CURRENCY_NOT_VALID = "The currency code is not valid"
CURRENCY_NOT_SUBSCRIBED = "Organisation is not subscribed to currency {code}"
# https://github.com/waynerobinson/xeroizer/issues/92: "The document date cannot be before the
# end of year lock date, currently set at 31-Jul-2013"; the period lock's by analogy.
LOCKED = "The document date cannot be before the {which} lock date, currently set at {day}"
# Editing a document already in a locked period: "Document cannot be edited as it is currently
# dated before end of year lock date" (https://help.tradifyhq.com/hc/en-us/articles/
# 23573535657241); the period lock's by analogy.
LOCKED_EDIT = "Document cannot be edited as it is currently dated before {which} lock date"


# ----- numbers and reference -----------------------------------------------------------------
# A sales document's number is unique in the organisation: "InvoiceNumber: ACCREC – Unique alpha
# numeric code identifying invoice (when missing will auto-generate from your Organisation
# Invoice Settings) (max length = 255)", "ACCPAY – non-unique alpha numeric code" (spec, Invoice;
# https://developer.xero.com/documentation/api/invoices); "CreditNoteNumber: ACCRECCREDIT –
# Unique alpha numeric code identifying credit note (when missing will auto-generate ...)" (spec,
# CreditNote, no length given: the invoice's is used). No organisation setting that turns the
# check off was found; integrators report the refusal as a plain rule (Chargebee,
# https://www.chargebee.com/docs/billing/2.0/kb/accounting/xero-sync-error-invoice-number-must-be-
# unique; Bill.com, https://paymakerhelp.bill.com/hc/en-us/articles/360028269512). The words are
# Xero's, as clients match them (https://github.com/XeroAPI/Xero-Net/issues/238); the credit
# note's are worded alike (not found).
NUMBER_NOT_UNIQUE = "{label} # must be unique."
MAX_TEXT = 255
NUMBER_TOO_LONG = "{field} must be at most 255 characters"  # wording not found
NUMBER_NOT_TEXT = "{field} must be text"  # wording not found
# "Reference: ACCREC only – additional reference number (max length = 255)" (the Invoices page
# of Xero's docs, as copied at https://suchimitha.github.io/Xero-API/docs/InvoiceOperations;
# "the first 255 characters (this is a Xero limitation)", https://kb.stellarise.com/en/knowledge/
# how-do-i-populate-the-xero-reference-field). The refusal's wording was not found.
REFERENCE_TOO_LONG = "Reference must be at most 255 characters"


def holds_number(status: str) -> bool:
    """Whether a document in ``status`` keeps its number from others: a deleted one does not,
    a voided one does ("You can reuse numbers used on deleted invoices, credit notes, quotes and
    purchase orders ... You can't reuse numbers used on voided invoices", Xero Central,
    https://help.xero.com/uk/Settings_InvoiceNumber). That a document may then be created with
    a deleted one's number through the API is inferred from it."""
    return status != "DELETED"


def next_number(organisation: Organisation, credit: bool, taken: Callable[[str], bool]) -> str:
    """The number Xero gives a sales document sent without one, from the organisation's invoice
    settings, and the settings moved on. "Xero's numbering sequence has a fixed prefix: INV- for
    invoices, CN- for credit notes ... and an increasing number portion starting at 0001";
    "Invoices and credit notes use the same sequence. The prefix swaps between INV- and CN-
    depending whether it's an invoice or credit note, eg INV-0002, CN-0003, INV-0004"; the next
    number is shown "taking into account any invoices, credit notes ... generated", so one taken
    is passed over; the number may be padded with 0s (https://help.xero.com/uk/
    Settings_InvoiceNumber). A number sent by a client does not move the sequence ("INV-0001A
    ... INV-0001 will still be the next number", same page)."""
    prefix = organisation.credit_note_prefix if credit else organisation.invoice_prefix
    while True:
        digits = organisation.next_number
        organisation.next_number = str(int(digits) + 1).zfill(len(digits))
        if not taken(prefix + digits):
            return prefix + digits


# ----- status --------------------------------------------------------------------------------
# An invalid status change, and any change to a PAID/VOIDED/DELETED document: "If it's `Invoice
# not of valid status for modification` then you're trying to perform an invalid status change"
# (Xero's MJMortimer, https://github.com/XeroAPI/Xero-NetStandard/issues/79).
NOT_EDITABLE = "{label} not of valid status for modification"
# Creating a document in a status it cannot start in (integrators report it, e.g.
# https://help.yourtradebase.com/article/158-xero-error-messages).
NOT_CREATABLE = "{label} not of valid status for creation"
# Any change to a document with a payment on it (AUTHORISED, part paid):
# https://github.com/XeroAPI/Xero-NetStandard/issues/84.
HAS_PAYMENT = "This document cannot be edited as it has a payment or credit note allocated to it."
FINAL = {"PAID", "VOIDED", "DELETED"}
CREATE_STATUSES = {"DRAFT", "SUBMITTED", "AUTHORISED"}
# The status changes Xero support confirmed (https://github.com/waynerobinson/xeroizer/issues/48;
# the Invoices docs' "Deleting and Voiding Invoices", pointed to in Xero-NetStandard#79).
TRANSITIONS = {
    "DRAFT": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "SUBMITTED": {"DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"},
    "AUTHORISED": {"AUTHORISED", "VOIDED"},
}
LINE_AMOUNT_TYPES = {"Exclusive", "Inclusive", "NoTax"}


def resolve_line(books: Books, line: Line, *, draft: bool) -> tuple[list[str], list[str]]:
    """Check ``line`` against the books and fill what Xero fills (the item's account, tax type
    and description; the account's tax type; the ids and names of its tracking). Changes the
    line in place; returns (errors, warnings)."""
    errors: list[str] = []
    warnings: list[str] = []
    item = _item(books, line, errors)
    account = _account(books, line, item, draft, errors, warnings)
    if line.tax_type is None:
        # "TaxType: Used as an override if the default Tax Code for the selected AccountCode is
        # not correct" (https://developer.xero.com/documentation/api/accounting/invoices); a
        # line with an item takes the item's sales tax type first (as Xero's invoice editor
        # fills it), then the account's.
        line.tax_type = (item.sales_tax_type if item else None) or (
            account.tax_type if account else None
        )
    line.tax_rate = _tax_rate(books, line, account, errors)
    line.tracking = _tracking(books, line.tracking, errors)
    if not line.description and (line.quantity is None or line.unit_amount is None):
        errors.append(DESCRIPTION_REQUIRED)
    return errors, warnings


def _item(books: Books, line: Line, errors: list[str]) -> Any:
    if line.item_code is None:
        return None
    item = books.item(line.item_code)
    if item is None:
        errors.append(ITEM_NOT_VALID.format(code=line.item_code))
        return None
    line.item_code = item.code
    line.item = {"ItemID": item.item_id, "Code": item.code, "Name": item.name}
    if line.description is None:
        # A line with an item may leave its description out
        # (https://github.com/waynerobinson/xeroizer/pull/529); Xero takes the item's.
        line.description = item.description or item.name
    return item


def _account(
    books: Books, line: Line, item: Any, draft: bool, errors: list[str], warnings: list[str]
) -> Account | None:
    if line.account_code is None and line.account_id is None and item is not None:
        # A line with an item and no account takes the item's sales account (integrators rely
        # on it: https://github.com/XeroAPI/Xero-Net/issues/15,
        # https://github.com/calcinai/xero-php/issues/660).
        line.account_code = item.sales_account_code
    account: Account | None = None
    if line.account_id is not None:
        account = books.account(account_id=line.account_id)
        if account is None:
            errors.append(ACCOUNT_ID_NOT_VALID.format(id=line.account_id))
            return None
    elif line.account_code is not None:
        account = books.account(code=line.account_code)
    if account is None or account.status != "ACTIVE":
        code = account.code if account is not None else line.account_code
        if code is None:
            if not draft:
                errors.append(ACCOUNT_REQUIRED)
            return None
        line.account_code = line.account_id = None
        if draft:
            warnings.append(ACCOUNT_REMOVED.format(code=code))
        elif account is None:
            errors.append(ACCOUNT_NOT_VALID.format(code=code))
        else:
            errors.append(ACCOUNT_ARCHIVED.format(code=code))
        return None
    line.account_code, line.account_id = account.code, account.account_id
    return account


def _tax_rate(books: Books, line: Line, account: Account | None, errors: list[str]) -> Any:
    if line.tax_type is None:
        return None
    rate: TaxRate | None = books.tax_rate(line.tax_type)
    if rate is None or rate.status != "ACTIVE":
        errors.append(TAX_NOT_VALID.format(tax=line.tax_type))
        return None
    line.tax_type = rate.tax_type
    if account is not None and account.account_class not in rate.applies_to:
        errors.append(TAX_NOT_FOR_ACCOUNT.format(tax=rate.tax_type, code=account.code))
        return None
    return rate.effective_rate


def _tracking(books: Books, sent: list[dict[str, Any]], errors: list[str]) -> list[dict[str, str]]:
    """Each entry names a category and an option, by name (``Name``/``Option``) or by id
    (``TrackingCategoryID``/``TrackingOptionID``); both must exist and be ACTIVE."""
    if len(sent) > 2:
        errors.append(TOO_MUCH_TRACKING)
        return []
    resolved: list[dict[str, str]] = []
    for entry in sent:
        category = _category(books, entry)
        if category is None or category.status != "ACTIVE":
            name = category.name if category else entry.get("Name")
            name = name or entry.get("TrackingCategoryID")
            errors.append(NO_TRACKING_CATEGORY.format(name=name or ""))
            continue
        option = None
        if entry.get("TrackingOptionID"):
            wanted = str(entry["TrackingOptionID"]).lower()
            option = next((o for o in category.options if o.option_id == wanted), None)
        elif isinstance(entry.get("Option"), str):
            option = category.option(entry["Option"])
        if option is None or option.status != "ACTIVE":
            name = option.name if option else entry.get("Option")
            name = name or entry.get("TrackingOptionID")
            errors.append(NO_TRACKING_OPTION.format(name=name or ""))
            continue
        if any(r["TrackingCategoryID"] == category.category_id for r in resolved):
            errors.append(SAME_CATEGORY_TWICE.format(name=category.name))
            continue
        resolved.append(
            {
                "TrackingCategoryID": category.category_id,
                "TrackingOptionID": option.option_id,
                "Name": category.name,
                "Option": option.name,
            }
        )
    return resolved


def _category(books: Books, entry: dict[str, Any]) -> TrackingCategory | None:
    if entry.get("TrackingCategoryID"):
        wanted = str(entry["TrackingCategoryID"]).lower()
        return next((c for c in books.tracking if c.category_id == wanted), None)
    name = entry.get("Name")
    return books.tracking_category(name) if isinstance(name, str) else None


@dataclass
class ContactRef:
    """The contact a document names; ``new`` is a contact to add to the books on success."""

    rendered: dict[str, str]
    new: Contact | None = None


class ContactIndex:
    """One tenant's contacts by id, number and name (``Books.contact``'s matching), so that a
    sync of thousands of invoices does not scan every contact for each one. The contacts API
    may add or change contacts between two batches (never during one: a batch holds the books'
    lock): after ``stale`` a hit is checked against the contact itself and the first miss
    rebuilds the index before it is believed."""

    def __init__(self, books: Books) -> None:
        self.books = books
        self._build()

    def _build(self) -> None:
        contacts = list(reversed(self.books.contacts))  # the first match wins, as in Books
        self._ids = {c.contact_id: c for c in contacts}
        self._numbers = {c.contact_number: c for c in contacts if c.contact_number}
        self._names = {c.name.strip().lower(): c for c in contacts}
        self._fresh = True

    def stale(self) -> None:
        """The contacts may have changed since the index was built (a new batch begins)."""
        self._fresh = False

    def _lookup(self, contact_id: str | None, number: str | None, name: str | None) -> Any:
        if contact_id is not None:
            found = self._ids.get(contact_id)
            return found if found is not None and found.contact_id == contact_id else None
        if number is not None:
            found = self._numbers.get(number)
            if found is not None and found.contact_number == number:
                return found
        if name is not None:
            wanted = name.strip().lower()
            found = self._names.get(wanted)
            if found is not None and found.name.strip().lower() == wanted:
                return found
        return None

    def find(
        self, contact_id: str | None = None, number: str | None = None, name: str | None = None
    ) -> Contact | None:
        """By id; else by number, then by name."""
        found = self._lookup(contact_id, number, name)
        if found is None and not self._fresh:
            self._build()
            found = self._lookup(contact_id, number, name)
        return found

    def add(self, contact: Contact) -> None:
        self.books.contacts.append(contact)
        self._ids.setdefault(contact.contact_id, contact)
        if contact.contact_number:
            self._numbers.setdefault(contact.contact_number, contact)
        self._names.setdefault(contact.name.strip().lower(), contact)


def resolve_contact(contacts: ContactIndex, raw: Any, now: float) -> ContactRef:
    """Found by ContactID, else ContactNumber, else Name (case-insensitive); a number or name
    that matches none makes a new contact (https://developer.xero.com/documentation/api/
    accounting/invoices: "Contact ... ContactID, ContactNumber or Name"); archived ones refused."""
    if not isinstance(raw, dict):
        raise Invalid(CONTACT_REQUIRED)
    contact_id, number, name = raw.get("ContactID"), raw.get("ContactNumber"), raw.get("Name")
    number = number if isinstance(number, str) and number.strip() else None
    name = name if isinstance(name, str) and name.strip() else None
    if not (contact_id or number or name):
        raise Invalid(CONTACT_UNIDENTIFIED)
    if contact_id:
        found = contacts.find(contact_id=guid(contact_id, "ContactID"))
        if found is None:
            # What Xero answers for a well-formed ContactID it does not know was not found (an
            # ill-formed one gives a 500: https://github.com/XeroAPI/xero-node/issues/285). The
            # sandbox takes it as it is: the project's ContactIDs come from m3ter's external
            # mappings, which the sandbox never created.
            rendered = {"ContactID": guid(contact_id, "ContactID"), "ContactStatus": "ACTIVE"}
            return ContactRef({**rendered, **({"Name": name} if name else {})})
    else:
        found = contacts.find(number=number, name=name)
    if found is None:
        if name is None:
            raise Invalid(CONTACT_NAME_EMPTY)
        new = Contact(
            contact_id=str(uuid.uuid4()),
            name=name.strip(),
            contact_number=number,
            is_customer=True,
            updated=now,
        )
        return ContactRef(render_contact(new), new)
    if found.status == "ARCHIVED":
        raise Invalid(CONTACT_ARCHIVED)
    return ContactRef(render_contact(found))


def render_contact(contact: Contact) -> dict[str, str]:
    out = {"ContactID": contact.contact_id, "Name": contact.name}
    if contact.contact_number:
        out["ContactNumber"] = contact.contact_number
    out["ContactStatus"] = contact.status
    return out


def currency(books: Books, code: Any) -> str:
    """A subscribed currency (the organisation's base one included)."""
    if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
        raise Invalid(CURRENCY_NOT_VALID)
    code = code.upper()
    if code not in books.currencies and code != books.organisation.base_currency:
        raise Invalid(CURRENCY_NOT_SUBSCRIBED.format(code=code))
    return code


def lock_refusal(organisation: Organisation, day: date, *, editing: bool = False) -> str | None:
    """Xero's refusal of a transaction dated ``day`` in a locked period, or None. "Users can't
    add or edit transactions in Xero if the transaction date is on or before the lock date";
    drafts and submitting for approval stay allowed (Xero Central, quoted at
    https://help.tradifyhq.com/hc/en-us/articles/23573535657241; the older
    https://help.xero.com/us/Settings_LockDate said "earlier than": the newer, inclusive rule is
    followed). The end of year lock binds every user; the period lock every user but advisers,
    and the sandbox's user is not an adviser."""
    eoy, period = organisation.end_of_year_lock_date, organisation.period_lock_date
    for which, lock in (("end of year", eoy), ("period", period)):
        if lock is not None and day <= lock:
            if editing:
                return LOCKED_EDIT.format(which=which)
            return LOCKED.format(which=which, day=f"{lock.day:02d}-{lock:%b-%Y}")
    return None
