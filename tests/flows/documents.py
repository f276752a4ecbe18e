"""The Xero sandbox's documents as the sync tests read them: by the m3ter bill each one is.

The sandbox lists a tenant's documents by their number (``GET /_sandbox/state``), and the number
depends on the integration's ``invoice_numbering``: m3ter's invoice number (the default), Xero's
own, or the bill id. Every document the sync makes carries its bill id as its number or as its
Reference (``tasks.mapping.invoice``), and m3ter's bill ids are UUIDs while its invoice numbers
are not (``INV-000061``): a document is its Reference's bill when that is a UUID, else its
number's. Each document keeps its number under ``Number``.
"""

from __future__ import annotations

import uuid
from typing import Any


def is_bill_id(value: Any) -> bool:
    """Whether ``value`` is an m3ter bill id (a UUID)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def by_bill(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """number -> document (the sandbox's listing) as bill id -> document, with ``Number``."""
    out: dict[str, dict[str, Any]] = {}
    for number, doc in docs.items():
        reference = doc.get("Reference")
        bill = reference if is_bill_id(reference) else number
        out[bill] = {**doc, "Number": number}
    return out
