"""Bill -> Xero invoice mapping: pure functions on the m3ter models and the integration config.

``selection`` decides what is sent (accounts, bills, lines), ``lines`` makes Xero line items whose
money adds up, ``coding`` books each to its account, tax and tracking (from ``external``
mappings), ``invoice`` assembles the document and its outcome; ``tasks.xero.money_json``
writes it exactly.
"""

from tasks.mapping.coding import Coder, LineCoding, missing_account_reason, product_key
from tasks.mapping.external import XeroMappings, find_mapping, find_mappings, preferred_mappings
from tasks.mapping.invoice import (
    MappingResult,
    Outcome,
    document_number,
    find_contact_mapping,
    map_bill,
    xero_contact,
)
from tasks.mapping.lines import build_line_items, document_total
from tasks.mapping.selection import account_allowed, bill_wanted, line_kept, select_accounts

__all__ = [
    "Coder",
    "LineCoding",
    "MappingResult",
    "Outcome",
    "XeroMappings",
    "account_allowed",
    "bill_wanted",
    "build_line_items",
    "document_number",
    "document_total",
    "find_contact_mapping",
    "find_mapping",
    "find_mappings",
    "line_kept",
    "map_bill",
    "missing_account_reason",
    "preferred_mappings",
    "product_key",
    "select_accounts",
    "xero_contact",
]
