"""Contacts over the Accounting API: ``GET /Contacts[/{ContactID or ContactNumber}]``,
``PUT /Contacts`` (create), ``POST /Contacts[/{ContactID}]`` (create or update).

Rules, with their sources:

- ``GET /Contacts`` leaves ARCHIVED contacts out unless ``includeArchived=true`` ("Contacts with
  a status of ARCHIVED will be included in the response", spec parameter); ``page=N`` gives 100
  at a time ("Up to 100 contacts will be returned in a single API call") with a ``pagination``
  block (spec ``Contacts`` schema and example), ``pageSize`` 1 to 1000 (1000 is the cap
  integrators document, e.g. CData's Xero driver); ``searchTerm`` searches Name, FirstName,
  LastName, ContactNumber and EmailAddress case-insensitively (spec parameter). The archived
  filter applies to ``IDs`` and ``where`` too: Xero does not document otherwise.
- ``GET /Contacts/{ref}``: a GUID is a ContactID, anything else a ContactNumber (spec paths
  ``/Contacts/{ContactID}`` and ``/Contacts/{ContactNumber}``); archived ones are found.
- A name is required and unique among ACTIVE contacts: "The contact name X is already assigned
  to another contact. The contact name must be unique across all active contacts." (spec's PUT
  Contacts 400 example). Compared case-insensitively here (Xero's matching is not documented).
  The wording for a missing name, "Contact Name must be specified", comes from an integrator's
  notes, not from Xero's docs.
- ``ContactNumber`` is unique among all contacts. The wording "The contact number X is already
  assigned to another contact. The contact number must be unique across all contacts." is an
  integrator's observation, not documented; xero-php-oauth2#191 even reports a PUT that updated
  the contact holding the number. Here PUT refuses it.
- ``POST`` updates the contact named by ``ContactID``; without one, the contact holding the
  element's ``ContactNumber`` (a maintainer's answer in xero-node#167: external systems may
  update by ContactNumber; the API 1.0 docs matched on "ContactID, ContactNumber or Name");
  without a number, the ACTIVE contact of that name; else it creates. Fields left out keep their
  values ("If you exclude an element then the existing value of that field will be preserved",
  the Contacts docs quoted in calcinai/xero-php#171); addresses are replaced per AddressType.
  An ARCHIVED contact becomes ACTIVE with ``ContactStatus: ACTIVE`` (name rule applies).
- ``IsCustomer``/``IsSupplier`` "Cannot be set via PUT or POST" (Contacts docs): ignored on input.
- Lengths from the spec: Name, FirstName, LastName, EmailAddress 255; ContactNumber 50; address
  lines 500, City/Region/AttentionTo 255, PostalCode/Country 50.
- Refused elements carry ``HasValidationErrors: true`` and ``ValidationErrors`` (spec example).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from sandbox.xero import reference_wire as rw
from sandbox.xero import wire
from sandbox.xero.books import Books, BooksStore, Contact
from sandbox.xero.idempotency import StoredAnswer

FIELDS = ("ContactID", "ContactNumber", "Name", "ContactStatus", "EmailAddress", "FirstName",
          "LastName", "IsCustomer", "IsSupplier")  # fmt: skip
PAGE = 100
MAX_PAGE_SIZE = 1000
NAME_MISSING = "Contact Name must be specified"
NAME_TAKEN = (
    "The contact name {name} is already assigned to another contact. "
    "The contact name must be unique across all active contacts."
)
NUMBER_TAKEN = (
    "The contact number {number} is already assigned to another contact. "
    "The contact number must be unique across all contacts."
)
TEXT_LIMITS = {"Name": 255, "FirstName": 255, "LastName": 255, "EmailAddress": 255,
               "ContactNumber": 50}  # fmt: skip
ADDRESS_LIMITS = {"AddressLine1": 500, "AddressLine2": 500, "AddressLine3": 500,
                  "AddressLine4": 500, "City": 255, "Region": 255, "PostalCode": 50,
                  "Country": 50, "AttentionTo": 255}  # fmt: skip
ADDRESS_TYPES = ("STREET", "POBOX")
_ATTRS = {"Name": "name", "ContactNumber": "contact_number", "EmailAddress": "email",
          "FirstName": "first_name", "LastName": "last_name"}  # fmt: skip


class ContactsApi:
    """The Contacts endpoints over every tenant's books."""

    def __init__(self, books: BooksStore, now: Callable[[], float]) -> None:
        self.books = books
        self.now = now

    def routes(self, gate: rw.Gate, api: str) -> list[BaseRoute]:
        return [
            Route(f"{api}/Contacts", gate(self.handle), methods=["GET", "PUT", "POST"]),
            Route(f"{api}/Contacts/{{contact_ref}}", gate(self.handle), methods=["GET", "POST"]),
        ]

    def handle(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        ref = request.path_params.get("contact_ref")
        with self.books.lock:
            books = self.books.for_tenant(tenant_id)
            now = float(self.now())
            if request.method == "GET":
                return self._read(request, books, ref, now)
            elements = rw.load_elements(body, "Contacts")
            if elements is None:
                return rw.bad_body("Contacts")
            target = None
            if ref is not None:
                target = books.contact(contact_id=ref) if rw.is_uuid(ref) else None
                if target is None:
                    return rw.not_found()
                elements = elements[:1]
            update = request.method == "POST"
            outcomes = [self._write(books, el, update, target, now) for el in elements]
        summarized = rw.summarize(request.query_params)
        return rw.batch_answer(
            "Contacts", outcomes, summarized=summarized, now=now, flag="HasValidationErrors"
        )

    # ----- reads ---------------------------------------------------------------------------------
    def _read(self, request: Request, books: Books, ref: str | None, now: float) -> StoredAnswer:
        if ref is not None:
            found = books.contact(contact_id=ref) if rw.is_uuid(ref) else books.contact(number=ref)
            if found is None:
                return rw.not_found()
            return rw.collection("Contacts", [render_contact(found)], now)
        params = request.query_params
        contacts = list(books.contacts)
        if not rw.truthy(params.get("includeArchived")):
            contacts = [c for c in contacts if c.status != "ARCHIVED"]
        if params.get("IDs"):
            ids = {i.strip().lower() for i in params["IDs"].split(",")}
            contacts = [c for c in contacts if c.contact_id in ids]
        if params.get("searchTerm"):
            term = params["searchTerm"].strip().lower()
            contacts = [c for c in contacts if term in _searchable(c)]
        listed = rw.filtered([render_contact(c) for c in contacts], params.get("where"), FIELDS)
        if isinstance(listed, StoredAnswer):
            return listed
        rows = listed
        page = params.get("page")
        if not page:
            return rw.collection("Contacts", rows, now)
        size = params.get("pageSize") or str(PAGE)
        if not page.isdigit() or int(page) < 1 or not size.isdigit() or int(size) < 1:
            return rw.query_error("page and pageSize must be positive whole numbers")
        number, size_n = int(page), min(int(size), MAX_PAGE_SIZE)
        pagination = {"page": number, "pageSize": size_n,
                      "pageCount": -(-len(rows) // size_n), "itemCount": len(rows)}  # fmt: skip
        chunk = rows[(number - 1) * size_n : number * size_n]
        return rw.collection("Contacts", chunk, now, pagination=pagination)

    # ----- writes --------------------------------------------------------------------------------
    def _write(
        self, books: Books, element: Any, update: bool, target: Contact | None, now: float
    ) -> rw.Outcome:
        echo = rw.echo(element, TEXT_LIMITS, "ContactID")
        if not isinstance(element, dict):
            return rw.Outcome(echo=echo, errors=["A Contact must be an object"])
        errors: list[str] = []
        given = {k: rw.text(element, k, errors, limit=n) for k, n in TEXT_LIMITS.items()}
        given = {k: v.strip() for k, v in given.items() if v is not None}
        addresses = _addresses(element.get("Addresses"), errors)
        status = element.get("ContactStatus")
        if status is not None and status not in ("ACTIVE", "ARCHIVED"):
            errors.append("ContactStatus must be ACTIVE or ARCHIVED")  # Xero's wording unknown
        existing = target
        if existing is None and update:
            existing = _match(books, element, given, errors)
        name = given.get("Name", existing.name if existing else "")
        number = given.get("ContactNumber", existing.contact_number if existing else None)
        final_status = status or (existing.status if existing else "ACTIVE")
        if not name:
            errors.append(NAME_MISSING)
        elif final_status == "ACTIVE" and _name_taken(books, name, existing):
            errors.append(NAME_TAKEN.format(name=name))
        if number and any(c.contact_number == number and c is not existing for c in books.contacts):
            errors.append(NUMBER_TAKEN.format(number=number))
        if errors:
            return rw.Outcome(echo=echo, errors=errors)
        contact = existing or books.add_contact(name, now)
        for key, value in given.items():
            setattr(contact, _ATTRS[key], value if key == "Name" else (value or None))
        if addresses is not None:
            replaced = {a["AddressType"] for a in addresses}
            kept = [a for a in contact.addresses if a["AddressType"] not in replaced]
            contact.addresses = kept + addresses
        contact.status = final_status
        contact.updated = now
        return rw.Outcome(rendered=render_contact(contact))


def _match(
    books: Books, element: dict[str, Any], given: dict[str, str], errors: list[str]
) -> Contact | None:
    """The contact a POST element updates, or None to create one."""
    raw_id = element.get("ContactID")
    if raw_id:
        found = books.contact(contact_id=raw_id) if rw.is_uuid(raw_id) else None
        if found is None:
            errors.append(f"Contact with ContactID {raw_id} could not be found")  # not documented
        return found
    if given.get("ContactNumber"):
        return books.contact(number=given["ContactNumber"])
    if given.get("Name"):
        wanted = given["Name"].lower()
        active = (c for c in books.contacts if c.status == "ACTIVE")
        return next((c for c in active if c.name.strip().lower() == wanted), None)
    return None


def _searchable(contact: Contact) -> str:
    fields = (contact.name, contact.first_name, contact.last_name, contact.contact_number)
    return "\n".join(v for v in (*fields, contact.email) if v).lower()


def _name_taken(books: Books, name: str, itself: Contact | None) -> bool:
    wanted = name.strip().lower()
    return any(
        c is not itself and c.status == "ACTIVE" and c.name.strip().lower() == wanted
        for c in books.contacts
    )


def _addresses(raw: Any, errors: list[str]) -> list[dict[str, str]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        errors.append("Addresses must be a list of addresses")
        return None
    out: list[dict[str, str]] = []
    for address in raw:
        kind = address.get("AddressType")
        if kind not in ADDRESS_TYPES:
            errors.append("AddressType must be STREET or POBOX")  # spec enum; wording unknown
            continue
        clean = {"AddressType": kind}
        for key, limit in ADDRESS_LIMITS.items():
            value = rw.text(address, key, errors, limit=limit)
            if value is not None:
                clean[key] = value
        out.append(clean)
    return out


def render_contact(contact: Contact) -> dict[str, Any]:
    out: dict[str, Any] = {"ContactID": contact.contact_id, "ContactStatus": contact.status,
                           "Name": contact.name}  # fmt: skip
    for key, attr in _ATTRS.items():
        value = getattr(contact, attr)
        if key != "Name" and value:
            out[key] = value
    # Xero lists both address slots, empty ones too (the spec's GET Contacts example).
    by_type = {a["AddressType"]: a for a in contact.addresses}
    out["Addresses"] = [dict(by_type.get(t, {"AddressType": t})) for t in ADDRESS_TYPES]
    out.update(
        {
            "Phones": [],
            "UpdatedDateUTC": wire.ms_datetime(contact.updated),
            "ContactGroups": [],
            "IsSupplier": contact.is_supplier,
            "IsCustomer": contact.is_customer,
            "ContactPersons": [],
            "HasAttachments": False,
            "HasValidationErrors": False,
        }
    )
    return out
