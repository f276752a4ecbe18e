"""The two kinds of document a bill becomes, invoice and credit note: what differs, in one table.

Xero's field names are the client's own (``tasks.xero.invoices``); the client's calls are
reached through the kind, so that the poster's steps never branch on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tasks.xero.invoices import CREDIT_NOTES, INVOICES, InvoiceResult, XeroAccountingClient


class KindCalls(NamedTuple):
    """The client's calls for one kind (``post_invoices`` or ``post_credit_notes``, ...)."""

    post: Callable[..., list[InvoiceResult]]  # (documents, *, idempotency_key, update)
    find_by_number: Callable[[list[str]], dict[str, dict[str, Any]]]
    find_by_reference: Callable[[list[str]], dict[str, dict[str, Any]]]
    get: Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class DocumentKind:
    """One kind of document: its Xero fields, the client's calls for it, and the other kind."""

    name: str  # as ``Send.kind`` and the ledger's ``document_type`` spell it
    other_name: str  # a bill whose sign changed withdraws its document of the other kind
    id_field: str
    number_field: str
    _calls: Callable[[XeroAccountingClient], KindCalls]
    noun: str  # as a person reads it: "invoice", "credit note"
    nouns: str

    @property
    def other(self) -> DocumentKind:
        """The other kind (a sign change withdraws it)."""
        return KINDS[self.other_name]

    def calls(self, client: XeroAccountingClient) -> KindCalls:
        """The client's calls for this kind."""
        return self._calls(client)

    def doc_id(self, doc: dict[str, Any]) -> str | None:
        """The id of a document of this kind as Xero returned it."""
        return doc.get(self.id_field)

    def doc_number(self, doc: dict[str, Any]) -> str | None:
        """The number of a document of this kind as Xero returned it (None: it has none)."""
        return doc.get(self.number_field) or None


INVOICE = DocumentKind(
    "invoice",
    "credit_note",
    INVOICES.id_field,
    INVOICES.number_field,
    lambda client: KindCalls(
        client.post_invoices,
        client.find_invoices_by_number,
        client.find_invoices_by_reference,
        client.get_invoice,
    ),
    "invoice",
    "invoices",
)
CREDIT_NOTE = DocumentKind(
    "credit_note",
    "invoice",
    CREDIT_NOTES.id_field,
    CREDIT_NOTES.number_field,
    lambda client: KindCalls(
        client.post_credit_notes,
        client.find_credit_notes_by_number,
        client.find_credit_notes_by_reference,
        client.get_credit_note,
    ),
    "credit note",
    "credit notes",
)
#: Both kinds, invoices first: the order in which the poster sends them.
KINDS: dict[str, DocumentKind] = {kind.name: kind for kind in (INVOICE, CREDIT_NOTE)}
