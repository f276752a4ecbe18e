"""Items over the Accounting API: ``GET /Items[/{ItemID or Code}]``, ``PUT /Items`` (create),
``POST /Items[/{ItemID}]`` (create or update).

Rules, with their sources:

- ``Code`` is required on every element, also on an update by ``ItemID``: Xero answers "Price
  List Item Code must be supplied" (reported in calcinai/xero-php#528); at most 30 characters,
  ``Name`` 50, ``Description`` 4000 (spec ``Item`` schema).
- A code is unique: "Price List Item with Code 'abc' already exists" (the spec's PUT/POST Items
  example; XeroAPI/Xero-Java's AccountingApiItemsTest). Codes match case-insensitively here.
- ``POST`` updates the item named by ``ItemID``, else the one whose ``Code`` matches, else
  creates; fields left out keep their values (the docs' rule for updates: "If you exclude an
  element then the existing value of that field will be preserved", quoted in
  calcinai/xero-php#171 from the Contacts page).
- ``SalesDetails.AccountCode`` must be in the chart and ``SalesDetails.TaxType`` among the tax
  rates. Xero's wording for items is not documented: the line-item wordings are reused
  ("Account code '200' is not a valid code for this document.", XeroAPI/Xero-NetStandard#364;
  "The TaxType code X does not exist or cannot be used for this type of transaction.",
  XeroAPI/Xero-Java#336). Whether Xero refuses an archived account on an item is not documented:
  the invoice rules refuse it when the item is used.
- ``UnitPrice`` is rounded to 2 decimals, 4 with ``unitdp=4`` (Items docs).
- No element count limit: "There is no limit to the number of elements within a request,
  provided the overall request size does not exceed 3.5MB" (developer.xero.com xero-api-limits).
  The size limit is not enforced (Xero's answer to an oversized body is not documented).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from sandbox.xero import reference_wire as rw
from sandbox.xero import wire
from sandbox.xero.books import Books, BooksStore, Item
from sandbox.xero.idempotency import StoredAnswer

CENT, FOUR = Decimal("0.01"), Decimal("0.0001")
LIMITS = {"Code": 30, "Name": 50, "Description": 4000}  # spec Item schema
FIELDS = ("ItemID", "Code", "Name", "Description", "IsSold", "IsPurchased")
CODE_MISSING = "Price List Item Code must be supplied"
DUPLICATE = "Price List Item with Code '{code}' already exists"
BAD_ACCOUNT = "Account code '{code}' is not a valid code for this document."
BAD_TAX = "The TaxType code {code} does not exist or cannot be used for this type of transaction."


class ItemsApi:
    """The Items endpoints over every tenant's books."""

    def __init__(self, books: BooksStore, now: Callable[[], float]) -> None:
        self.books = books
        self.now = now

    def routes(self, gate: rw.Gate, api: str) -> list[BaseRoute]:
        return [
            Route(f"{api}/Items", gate(self.handle), methods=["GET", "PUT", "POST"]),
            Route(f"{api}/Items/{{item_ref}}", gate(self.handle), methods=["GET", "POST"]),
        ]

    def handle(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        places = FOUR if request.query_params.get("unitdp") == "4" else CENT
        ref = request.path_params.get("item_ref")
        with self.books.lock:
            books = self.books.for_tenant(tenant_id)
            if request.method == "GET":
                return self._read(request, books, ref, places)
            elements = rw.load_elements(body, "Items")
            if elements is None:
                return rw.bad_body("Items")
            target = None
            if ref is not None:
                target = _find(books, ref)
                if target is None:
                    return rw.not_found()
                elements = elements[:1]
            now = float(self.now())
            outcomes = [
                self._write(books, el, request.method == "POST", target, places, now)
                for el in elements
            ]
        return rw.batch_answer(
            "Items", outcomes, summarized=rw.summarize(request.query_params), now=now, flag=None
        )

    def _read(
        self, request: Request, books: Books, ref: str | None, places: Decimal
    ) -> StoredAnswer:
        now = float(self.now())
        if ref is not None:
            item = _find(books, ref)
            if item is None:
                return rw.not_found()
            return rw.collection("Items", [render_item(item, places)], now)
        rows = [render_item(item, places) for item in books.items]
        listed = rw.filtered(rows, request.query_params.get("where"), FIELDS)
        if isinstance(listed, StoredAnswer):
            return listed
        return rw.collection("Items", listed, now)

    def _write(
        self,
        books: Books,
        element: Any,
        allow_update: bool,
        target: Item | None,
        places: Decimal,
        now: float,
    ) -> rw.Outcome:
        echo = rw.echo(element, LIMITS, "ItemID", required=("Code",))
        if not isinstance(element, dict):
            return rw.Outcome(echo=echo, errors=["An Item must be an object"])
        errors: list[str] = []
        code = (rw.text(element, "Code", errors, limit=LIMITS["Code"]) or "").strip()
        name = rw.text(element, "Name", errors, limit=LIMITS["Name"])
        description = rw.text(element, "Description", errors, limit=LIMITS["Description"])
        if not code:
            errors.append(CODE_MISSING)
        existing = target
        if existing is None and allow_update:
            raw_id = element.get("ItemID")
            if rw.is_uuid(raw_id):
                existing = next((i for i in books.items if i.item_id == raw_id.lower()), None)
                if existing is None:
                    errors.append(f"Item with ItemID {raw_id} could not be found")  # not documented
            elif code:
                existing = books.item(code)
        holder = books.item(code) if code else None
        if holder is not None and holder is not existing:
            errors.append(DUPLICATE.format(code=code))
        sales = _sales(books, element.get("SalesDetails"), places, errors)
        if errors:
            return rw.Outcome(echo=echo, errors=errors)
        item = existing or Item(rw.new_id(), code, name or "", updated=now)
        if existing is None:
            books.items.append(item)
        item.code = code
        if name is not None:
            item.name = name
        if description is not None:
            item.description = description
        for flag, attr in (("IsSold", "is_sold"), ("IsPurchased", "is_purchased")):
            if isinstance(element.get(flag), bool):
                setattr(item, attr, element[flag])
        for attr, value in sales.items():
            setattr(item, attr, value)
        item.updated = now
        return rw.Outcome(rendered=render_item(item, places))


def _sales(books: Books, raw: Any, places: Decimal, errors: list[str]) -> dict[str, Any]:
    """The ``SalesDetails`` given, checked, as ``Item`` attributes (absent keys keep theirs)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append("SalesDetails must be an object")
        return {}
    out: dict[str, Any] = {}
    if "UnitPrice" in raw:
        try:
            price = Decimal(str(raw["UnitPrice"])) if raw["UnitPrice"] is not None else None
            if price is not None and not price.is_finite():
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors.append("UnitPrice must be a number")
        else:
            out["sales_unit_price"] = (
                price.quantize(places, ROUND_HALF_UP) if price is not None else None
            )
    code = raw.get("AccountCode")
    if code not in (None, ""):
        if books.account(code=str(code)) is None:
            errors.append(BAD_ACCOUNT.format(code=code))
        out["sales_account_code"] = str(code).strip()
    tax = raw.get("TaxType")
    if tax not in (None, ""):
        if books.tax_rate(str(tax)) is None:
            errors.append(BAD_TAX.format(code=tax))
        out["sales_tax_type"] = str(tax).strip().upper()
    return out


def _find(books: Books, ref: str) -> Item | None:
    """By ItemID or by Code: ``GET /Items/{ItemID}`` also takes the code (XeroAPI/xero-python#53
    reads an item by code)."""
    if rw.is_uuid(ref):
        return next((i for i in books.items if i.item_id == ref.strip().lower()), None)
    return books.item(ref)


def render_item(item: Item, places: Decimal) -> dict[str, Any]:
    sales: dict[str, Any] = {}
    if item.sales_unit_price is not None:
        sales["UnitPrice"] = item.sales_unit_price.quantize(places, ROUND_HALF_UP)
    if item.sales_account_code:
        sales["AccountCode"] = item.sales_account_code
    if item.sales_tax_type:
        sales["TaxType"] = item.sales_tax_type
    out: dict[str, Any] = {
        "ItemID": item.item_id,
        "Code": item.code,
        "Name": item.name,
        "UpdatedDateUTC": wire.ms_datetime(item.updated),
        "PurchaseDetails": {},
        "SalesDetails": sales,
        "IsTrackedAsInventory": False,
        "IsSold": item.is_sold,
        "IsPurchased": item.is_purchased,
    }
    if item.description is not None:
        out["Description"] = item.description
    return out
