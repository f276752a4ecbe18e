"""Changes to a tenant's seed for tests and demos, behind ``POST /_sandbox/tenants/{t}/books``.

``changes`` checks a whole request before anything changes: one bad entry changes nothing.
``summary`` is what the control endpoint answers and ``GET /_sandbox/state`` shows per tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

from sandbox.xero.books import Books, Organisation, currency_name

Change = Callable[[], None]


def changes(books: Books, payload: dict[str, Any], now: float) -> list[Change]:
    """Every change the payload asks for, checked first: one bad entry changes nothing."""
    out: list[Change] = []
    for entry in payload.get("accounts") or []:
        acc = books.account(code=str(entry["code"]))
        if acc is None:
            raise ValueError(f"no account with code {entry['code']}")
        out.append(_setter(acc, _status(entry, {"ACTIVE", "ARCHIVED"}), now))
    for entry in payload.get("contacts") or []:
        contact = books.contact(number=entry.get("number"), name=entry.get("name"))
        if contact is None:
            raise ValueError(f"no contact {entry.get('number') or entry.get('name')}")
        out.append(_setter(contact, _status(entry, {"ACTIVE", "ARCHIVED"}), now))
    for entry in payload.get("tax_rates") or []:
        rate = books.tax_rate(str(entry["tax_type"]))
        if rate is None:
            raise ValueError(f"no tax rate {entry['tax_type']}")
        out.append(_setter(rate, _status(entry, {"ACTIVE", "DELETED", "ARCHIVED"}), None))
    for entry in payload.get("tracking") or []:
        cat = books.tracking_category(str(entry["category"]))
        target = cat.option(str(entry["option"])) if cat and entry.get("option") else cat
        if target is None:
            raise ValueError(f"no tracking {entry['category']} {entry.get('option') or ''}")
        out.append(_setter(target, _status(entry, {"ACTIVE", "ARCHIVED"}), None))
    if "lock_dates" in payload:
        out.append(_lock_dates(books.organisation, payload["lock_dates"]))
    if "invoice_settings" in payload:
        out.append(_invoice_settings(books.organisation, payload["invoice_settings"]))
    currencies = payload.get("currencies") or {}
    for code in currencies.get("add") or []:
        name = currency_name(str(code))
        if name is None:
            raise ValueError(f"unknown currency {code}")
        out.append(partial(books.currencies.__setitem__, str(code).upper(), name))
    for raw in currencies.get("remove") or []:
        code = str(raw).upper()
        if code == books.organisation.base_currency:
            raise ValueError(f"{code} is the base currency")
        out.append(partial(books.currencies.pop, code, None))
    return out


def _status(entry: dict[str, Any], allowed: set[str]) -> str:
    status = str(entry.get("status", "")).upper()
    if status not in allowed:
        raise ValueError(f"status must be one of {sorted(allowed)}")
    return status


def _setter(target: Any, status: str, now: float | None) -> Change:
    def change() -> None:
        target.status = status
        if now is not None:
            target.updated = now

    return change


def _lock_dates(org: Organisation, raw: Any) -> Change:
    if not isinstance(raw, dict):
        raise ValueError('lock_dates: expected {"period": "YYYY-MM-DD" or null, ...}')
    parsed = {k: date.fromisoformat(v) if v else None for k, v in raw.items()}
    if set(parsed) - {"period", "end_of_year"}:
        raise ValueError("lock_dates: only period and end_of_year")

    def change() -> None:
        if "period" in parsed:
            org.period_lock_date = parsed["period"]
        if "end_of_year" in parsed:
            org.end_of_year_lock_date = parsed["end_of_year"]

    return change


def _invoice_settings(org: Organisation, raw: Any) -> Change:
    """The prefixes and next number Xero numbers documents with (Invoice Settings > Default
    Settings: a prefix of up to 10 characters, a number padded with 0s up to 10,
    https://help.xero.com/uk/Settings_InvoiceNumber)."""
    fields = {"invoice_prefix", "credit_note_prefix", "next_number"}
    if not isinstance(raw, dict) or set(raw) - fields:
        raise ValueError(f"invoice_settings: only {sorted(fields)}")
    values = {k: str(v) for k, v in raw.items()}
    if any(len(v) > 10 for v in values.values()):
        raise ValueError("invoice_settings: at most 10 characters each")
    number = values.get("next_number")
    if number is not None and not number.isdigit():
        raise ValueError("invoice_settings: next_number is digits, e.g. 0001")

    def change() -> None:
        for key, value in values.items():
            setattr(org, key, value)

    return change


def summary(books: Books) -> dict[str, Any]:
    org = books.organisation
    return {
        "organisation": org.name,
        "base_currency": org.base_currency,
        "period_lock_date": org.period_lock_date.isoformat() if org.period_lock_date else None,
        "end_of_year_lock_date": (
            org.end_of_year_lock_date.isoformat() if org.end_of_year_lock_date else None
        ),
        "currencies": list(books.currencies),
        "invoice_settings": {
            "invoice_prefix": org.invoice_prefix,
            "credit_note_prefix": org.credit_note_prefix,
            "next_number": org.next_number,
        },
        "archived_accounts": [a.code for a in books.accounts if a.status != "ACTIVE"],
        "contacts": {
            c.contact_id: {"name": c.name, "number": c.contact_number, "status": c.status}
            for c in books.contacts
        },  # fmt: skip
        "items": [i.code for i in books.items],
        "tracking": {c.name: c.status for c in books.tracking},
    }
