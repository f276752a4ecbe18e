"""The Xero sandbox's reference data over real HTTP: organisation, currencies, accounts, tax
rates, items, tracking categories, contacts, and the control endpoint that changes them.

Every answer with a documented status is validated against ``xero_accounting.yaml`` and parsed
by the official SDK's own deserializer (``xero_python``), as an integration using it would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient

from sandbox.serve import ServerHandle
from sandbox.xero.state import DEFAULT_ORGS
from tests.sandbox.openapi import (
    check_answer,
    request_body,
)

SPEC = "xero_accounting.yaml"
API = "/api.xro/2.0"
UK, US = DEFAULT_ORGS
NAME_TAKEN = (
    "The contact name {} is already assigned to another contact. "
    "The contact name must be unique across all active contacts."
)
_SDK = AccountingApi(ApiClient())


class Xero:
    """Raw calls with a valid token; every exchange checked against the spec."""

    def __init__(self, http: httpx.Client, token: str, tenants: list[str]) -> None:
        self.http, self.token, self.tenants = http, token, tenants

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        schema: str | None = None,
        template: str | None = None,
        params: dict[str, str] | None = None,
        tenant: str | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        """``schema``: the request body's spec schema (None: a body the spec would refuse)."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "xero-tenant-id": self.tenants[0] if tenant is None else tenant,
        }
        if key:
            headers["Idempotency-Key"] = key
        content = request_body(schema, body)
        response = self.http.request(
            method, API + path, content=content, headers=headers, params=params
        )
        check_answer(template or path, method, response, strict=False)  # no 400 on GETs
        return response

    def control(self, payload: dict[str, Any], tenant: str = UK) -> httpx.Response:
        """``POST /_sandbox/tenants/{tenant}/books``: change the tenant's seed."""
        return self.http.post(f"/_sandbox/tenants/{tenant}/books", json=payload)

    def books(self, tenant: str = UK, **changes: Any) -> dict[str, Any]:
        answer = self.control(changes, tenant)
        assert answer.status_code == 200, answer.text
        return answer.json()


def sdk(response: httpx.Response, model: str) -> Any:
    """The answer as xero-python's ``ApiClient.deserialize`` turns it into SDK models."""
    raw = SimpleNamespace(text=response.text, data=response.content)
    return _SDK.api_client.deserialize(raw, model, _SDK.get_model_finder())


@pytest.fixture
def xero(xero_server: ServerHandle, xero_sandbox: Any) -> Iterator[Xero]:
    with httpx.Client(base_url=xero_server.url) as http:
        tokens = xero_sandbox.grant(list(DEFAULT_ORGS))
        yield Xero(http, tokens["access_token"], [xero_sandbox.orgs[n] for n in DEFAULT_ORGS])


def messages(element: dict[str, Any]) -> list[str]:
    return [e["Message"] for e in element["ValidationErrors"]]


# ----- organisation, currencies, accounts, tax rates --------------------------------------------
def test_organisation_of_each_region_and_its_lock_dates(xero: Xero) -> None:
    (uk,) = sdk(xero.call("GET", "/Organisation"), "Organisations").organisations
    assert (uk.name, uk.version, uk.base_currency.value, uk.country_code.value) == (
        UK,
        "UK",
        "GBP",
        "GB",
    )
    assert uk.timezone.value == "GMTSTANDARDTIME" and uk.is_demo_company is True
    assert isinstance(uk.created_date_utc, datetime) and uk.period_lock_date is None
    us_answer = xero.call("GET", "/Organisation", tenant=xero.tenants[1])
    (us,) = sdk(us_answer, "Organisations").organisations
    assert (us.version, us.base_currency.value, us.country_code.value) == ("US", "USD", "US")

    changed = xero.books(lock_dates={"period": "2025-01-31", "end_of_year": "2024-12-31"})
    assert changed["period_lock_date"] == "2025-01-31"
    answer = xero.call("GET", "/Organisation")
    assert answer.json()["Organisations"][0]["PeriodLockDate"] == "/Date(1738281600000+0000)/"
    (uk,) = sdk(answer, "Organisations").organisations
    assert (uk.period_lock_date, uk.end_of_year_lock_date) == (
        date(2025, 1, 31),
        date(2024, 12, 31),
    )
    xero.books(lock_dates={"period": None})
    assert "PeriodLockDate" not in xero.call("GET", "/Organisation").json()["Organisations"][0]


def test_currencies_are_subscribed_and_changed_all_or_nothing(xero: Xero) -> None:
    codes = [c.code.value for c in sdk(xero.call("GET", "/Currencies"), "Currencies").currencies]
    assert codes == ["GBP", "USD", "EUR", "NZD"]
    xero.books(currencies={"add": ["JPY"], "remove": ["NZD"]})
    listed = sdk(xero.call("GET", "/Currencies"), "Currencies").currencies
    assert {(c.code.value, c.description) for c in listed} >= {("JPY", "Japanese Yen")}
    assert "NZD" not in {c.code.value for c in listed}
    base = xero.control({"currencies": {"remove": ["GBP"]}})
    assert base.status_code == 400 and "base currency" in base.json()["error"]
    mixed = {
        "currencies": {"add": ["CAD", "XXX"]},
        "accounts": [{"code": "200", "status": "ARCHIVED"}],
    }
    assert xero.control(mixed).status_code == 400
    assert "CAD" not in [c["Code"] for c in xero.call("GET", "/Currencies").json()["Currencies"]]
    assert xero.call("GET", "/Currencies", params={"where": 'Code=="EUR"'}).json()[
        "Currencies"
    ] == [{"Code": "EUR", "Description": "Euro"}]


def test_chart_of_accounts_shape_where_and_archiving(xero: Xero) -> None:
    answer = xero.call("GET", "/Accounts")
    accounts = {a.code: a for a in sdk(answer, "Accounts").accounts}
    assert accounts["206"].status == "ARCHIVED" and accounts["200"].status == "ACTIVE"
    assert (accounts["200"]._class, accounts["200"].tax_type) == ("REVENUE", "OUTPUT2")
    assert (
        accounts["610"].system_account == "DEBTORS" and accounts["090"].bank_account_type == "BANK"
    )
    assert accounts["200"].updated_date_utc.tzinfo is not None

    def codes(where: str) -> list[str]:
        return [
            a["Code"]
            for a in xero.call("GET", "/Accounts", params={"where": where}).json()["Accounts"]
        ]

    assert "206" not in codes('Status=="ACTIVE"') and "206" in codes('Status=="ARCHIVED"')
    assert codes('Type=="REVENUE"') == ["200", "201", "202", "203", "204", "205", "270", "206"]
    assert "260" in codes('Class=="REVENUE"') and "260" not in codes('Type=="REVENUE"')
    assert codes('Code=="200"') == ["200"]
    assert codes('Status=="ACTIVE" AND Class=="REVENUE" AND Code=="206"') == []
    assert codes('Code=="090" OR Code=="610"') == ["090", "610"]
    refused = xero.call("GET", "/Accounts", params={"where": "Code>200"})
    assert (refused.status_code, refused.json()["Type"]) == (400, "QueryParseException")

    one = xero.call(
        "GET", f"/Accounts/{accounts['201'].account_id}", template="/Accounts/{AccountID}"
    )
    assert [a.code for a in sdk(one, "Accounts").accounts] == ["201"]
    unknown = f"/Accounts/{'0' * 8}-0000-0000-0000-{'0' * 12}"
    assert xero.call("GET", unknown).status_code == 404

    xero.books(
        accounts=[{"code": "200", "status": "ARCHIVED"}, {"code": "206", "status": "ACTIVE"}]
    )
    assert "200" in codes('Status=="ARCHIVED"') and "206" in codes('Status=="ACTIVE"')
    bad = xero.control({"accounts": [{"code": "999", "status": "ARCHIVED"}]})
    assert bad.status_code == 400


def test_tax_rates_with_components_rates_and_what_they_apply_to(xero: Xero) -> None:
    rates = {t.tax_type: t for t in sdk(xero.call("GET", "/TaxRates"), "TaxRates").tax_rates}
    vat = rates["OUTPUT2"]
    assert (vat.effective_rate, vat.display_tax_rate) == (Decimal("20.0000"), Decimal("20.0000"))
    assert vat.can_apply_to_revenue and not vat.can_apply_to_expenses
    assert [(c.name, c.rate) for c in vat.tax_components] == [("VAT", Decimal("20.0000"))]
    assert rates["OUTPUT"].status == "DELETED" and rates["NONE"].can_apply_to_liabilities
    active = xero.call("GET", "/TaxRates", params={"where": 'Status=="ACTIVE"'}).json()["TaxRates"]
    assert "OUTPUT" not in {t["TaxType"] for t in active}
    one = xero.call("GET", "/TaxRates", params={"where": 'TaxType=="RROUTPUT"'}).json()["TaxRates"]
    assert [t["Name"] for t in one] == ["5% (VAT on Income)"]

    us = {
        t.tax_type: t
        for t in sdk(xero.call("GET", "/TaxRates", tenant=xero.tenants[1]), "TaxRates").tax_rates
    }
    assert us["OUTPUT"].effective_rate == Decimal("8.8750")
    compound = us["TAX001"]  # 5 % state, then 2 % on amount plus state tax
    assert (compound.display_tax_rate, compound.effective_rate) == (
        Decimal("7.0000"),
        Decimal("7.1000"),
    )
    assert [c.is_compound for c in compound.tax_components] == [False, True]

    xero.books(tax_rates=[{"tax_type": "RROUTPUT", "status": "DELETED"}])
    deleted = xero.call("GET", "/TaxRates", params={"where": 'TaxType=="RROUTPUT"'})
    assert deleted.json()["TaxRates"][0]["Status"] == "DELETED"


# ----- items --------------------------------------------------------------------------------------
def item(code: str, **extra: Any) -> dict[str, Any]:
    return {"Code": code, "Name": f"{code} name", **extra}


def test_items_are_read_by_id_or_code(xero: Xero) -> None:
    listed = sdk(xero.call("GET", "/Items"), "Items").items
    usage = next(i for i in listed if i.code == "USAGE")
    assert (usage.sales_details.account_code, usage.sales_details.tax_type) == ("202", "OUTPUT2")
    assert usage.is_sold and usage.updated_date_utc.tzinfo is not None
    template = "/Items/{ItemID}"
    by_code = sdk(xero.call("GET", "/Items/usage", template=template), "Items").items
    by_id = sdk(xero.call("GET", f"/Items/{usage.item_id}", template=template), "Items").items
    assert [i.item_id for i in by_code] == [i.item_id for i in by_id] == [usage.item_id]
    assert xero.call("GET", "/Items/NOPE").status_code == 404
    where = xero.call("GET", "/Items", params={"where": 'Code=="SUPPORT"'}).json()["Items"]
    assert [i["Code"] for i in where] == ["SUPPORT"]


def test_item_create_update_and_refusals(xero: Xero) -> None:
    sales = {"UnitPrice": Decimal("12.345"), "AccountCode": "202", "TaxType": "OUTPUT2"}
    created = xero.call(
        "PUT", "/Items", {"Items": [item("API-1", SalesDetails=sales)]}, schema="Items"
    )
    (new,) = sdk(created, "Items").items
    assert new.sales_details.unit_price == Decimal("12.35") and new.status_attribute_string == "OK"
    four = xero.call(
        "PUT",
        "/Items",
        {"Items": [item("API-4", SalesDetails=sales)]},
        schema="Items",
        params={"unitdp": "4"},
    )
    assert '"UnitPrice":12.3450' in four.text

    duplicate = xero.call("PUT", "/Items", {"Items": [item("api-1")]}, schema="Items")
    assert duplicate.status_code == 400
    assert messages(duplicate.json()["Elements"][0]) == [
        "Price List Item with Code 'api-1' already exists"
    ]
    renamed = xero.call(
        "POST", "/Items", {"Items": [{"Code": "API-1", "Name": "Renamed"}]}, schema="Items"
    )
    (same,) = sdk(renamed, "Items").items
    assert (same.item_id, same.name, same.sales_details.account_code) == (
        new.item_id,
        "Renamed",
        "202",
    )
    clash = {"ItemID": new.item_id, "Code": "USAGE"}
    assert xero.call("POST", "/Items", {"Items": [clash]}, schema="Items").status_code == 400

    batch = [
        item("OK-1"),
        item("BAD-ACC", SalesDetails={"AccountCode": "999"}),
        item("BAD-TAX", SalesDetails={"TaxType": "NOPE"}),
        {"Name": "no code"},
        item("X" * 31),
    ]
    mixed = xero.call("PUT", "/Items", {"Items": batch}, params={"summarizeErrors": "false"})
    assert mixed.status_code == 200
    results = sdk(mixed, "Items").items
    assert [r.status_attribute_string for r in results] == ["OK"] + ["ERROR"] * 4
    assert [[e.message for e in r.validation_errors or []] for r in results[1:4]] == [
        ["Account code '999' is not a valid code for this document."],
        ["The TaxType code NOPE does not exist or cannot be used for this type of transaction."],
        ["Price List Item Code must be supplied"],
    ]
    assert "30 characters" in results[4].validation_errors[0].message
    codes = [i["Code"] for i in xero.call("GET", "/Items").json()["Items"]]
    assert "OK-1" in codes and "BAD-ACC" not in codes
    garbage = xero.http.put(
        f"{API}/Items",
        content=b"<Items/>",
        headers={"Authorization": f"Bearer {xero.token}", "xero-tenant-id": xero.tenants[0]},
    )
    assert garbage.json()["Type"] == "PostDataInvalidException"


# ----- tracking categories ------------------------------------------------------------------------
def test_tracking_categories_archived_options_and_limits(xero: Xero) -> None:
    shown = sdk(xero.call("GET", "/TrackingCategories"), "TrackingCategories").tracking_categories
    region = next(c for c in shown if c.name == "Region")
    assert "Highlands" not in [o.name for o in region.options] and len(shown) == 2
    everything = xero.call("GET", "/TrackingCategories", params={"includeArchived": "true"})
    archived = next(c for c in everything.json()["TrackingCategories"] if c["Name"] == "Region")
    assert {"Name": "Highlands", "Status": "ARCHIVED"}.items() <= archived["Options"][-1].items()
    one = xero.call(
        "GET",
        f"/TrackingCategories/{region.tracking_category_id}",
        template="/TrackingCategories/{TrackingCategoryID}",
    )
    assert sdk(one, "TrackingCategories").tracking_categories[0].name == "Region"

    third = xero.call(
        "PUT", "/TrackingCategories", {"Name": "Department"}, schema="TrackingCategory"
    )
    assert messages(third.json()["Elements"][0]) == [
        "You can only have 2 active tracking categories"
    ]
    xero.books(tracking=[{"category": "Product Line", "status": "ARCHIVED"}])
    again = xero.call(
        "PUT", "/TrackingCategories", {"Name": "Department"}, schema="TrackingCategory"
    )
    (department,) = sdk(again, "TrackingCategories").tracking_categories
    assert (department.status, department.options) == ("ACTIVE", [])
    names = [
        c["Name"] for c in xero.call("GET", "/TrackingCategories").json()["TrackingCategories"]
    ]
    assert names == ["Region", "Department"]
    xero.books(tracking=[{"category": "Department", "status": "ARCHIVED"}])
    assert xero.call("PUT", "/TrackingCategories", {"Name": "region"}).status_code == 400
    assert xero.call("PUT", "/TrackingCategories", {"Name": "Cost Centre"}).status_code == 200
    xero.books(tracking=[{"category": "Cost Centre", "status": "ARCHIVED"}])
    fifth = xero.call("PUT", "/TrackingCategories", {"Name": "Fifth"})
    assert "4 tracking categories" in messages(fifth.json()["Elements"][0])[0]

    path = f"/TrackingCategories/{department.tracking_category_id}/Options"
    template = "/TrackingCategories/{TrackingCategoryID}/Options"
    added = xero.call("PUT", path, {"Name": "East"}, schema="TrackingOption", template=template)
    (east,) = sdk(added, "TrackingOptions").options
    assert (east.name, east.status) == ("East", "ACTIVE")
    assert xero.call("PUT", path, {"Name": "east"}, template=template).status_code == 400
    missing = f"/TrackingCategories/{'1' * 8}-1111-1111-1111-{'1' * 12}/Options"
    assert xero.call("PUT", missing, {"Name": "X"}).status_code == 404
    xero.books(tracking=[{"category": "Region", "option": "North", "status": "ARCHIVED"}])
    region_now = xero.call("GET", "/TrackingCategories").json()["TrackingCategories"][0]
    assert "North" not in [o["Name"] for o in region_now["Options"]]


# ----- contacts -----------------------------------------------------------------------------------
def test_contacts_list_filters_archived_search_and_pages(xero: Xero) -> None:
    listed = sdk(xero.call("GET", "/Contacts"), "Contacts").contacts
    assert [c.name for c in listed] == ["Bank West", "Ridgeway University"]
    assert listed[0].contact_status == "ACTIVE" and listed[0].updated_date_utc.tzinfo is not None
    every = xero.call("GET", "/Contacts", params={"includeArchived": "true"}).json()["Contacts"]
    assert [c["ContactNumber"] for c in every if c["ContactStatus"] == "ARCHIVED"] == ["OLD-1"]

    def names(**params: str) -> list[str]:
        return [c["Name"] for c in xero.call("GET", "/Contacts", params=params).json()["Contacts"]]

    assert names(where='ContactNumber=="RIDGEWAY"') == ["Ridgeway University"]
    assert names(where='Name=="Bank West" OR Name=="Nobody"') == ["Bank West"]
    assert names(where='Name=="Bank West OR Name"') == []  # no split inside quotes
    assert names(where='ContactStatus=="ARCHIVED"', includeArchived="true") == ["Old Customer Ltd"]
    assert names(where='Name.StartsWith("ridge")') == ["Ridgeway University"]
    assert names(IDs=f"{listed[1].contact_id},{listed[0].contact_id}") == [
        "Bank West",
        "Ridgeway University",
    ]
    assert names(searchTerm="BANKWEST.example") == ["Bank West"]

    many = [{"Name": f"Customer {n:03}", "ContactNumber": f"C-{n:03}"} for n in range(120)]
    assert xero.call("PUT", "/Contacts", {"Contacts": many}, schema="Contacts").status_code == 200
    first = xero.call("GET", "/Contacts", params={"page": "1"})
    page = sdk(first, "Contacts")
    assert len(page.contacts) == 100
    assert (page.pagination.page, page.pagination.page_count, page.pagination.item_count) == (
        1,
        2,
        122,
    )
    assert len(names(page="2")) == 22 and len(names(page="3", pageSize="50")) == 22
    assert xero.call("GET", "/Contacts", params={"page": "0"}).status_code == 400


def test_contacts_are_read_by_id_or_by_number_archived_too(xero: Xero) -> None:
    by_number = xero.call("GET", "/Contacts/RIDGEWAY", template="/Contacts/{ContactNumber}")
    (ridgeway,) = sdk(by_number, "Contacts").contacts
    by_id = xero.call("GET", f"/Contacts/{ridgeway.contact_id}", template="/Contacts/{ContactID}")
    assert sdk(by_id, "Contacts").contacts[0].name == "Ridgeway University"
    old = xero.call("GET", "/Contacts/OLD-1", template="/Contacts/{ContactNumber}").json()
    assert old["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    assert xero.call("GET", "/Contacts/NOBODY").status_code == 404


def test_contact_create_refuses_taken_names_and_numbers(xero: Xero) -> None:
    address = {
        "AddressType": "POBOX",
        "AddressLine1": "1 Main St",
        "City": "Leeds",
        "PostalCode": "LS1",
        "Country": "United Kingdom",
    }
    new = {
        "Name": "Acme Ltd",
        "ContactNumber": "ACC-1",
        "FirstName": "Ada",
        "LastName": "Byron",
        "EmailAddress": "ap@acme.example",
        "Addresses": [address],
        "IsCustomer": True,
    }
    created = xero.call("PUT", "/Contacts", {"Contacts": [new]}, schema="Contacts")
    (acme,) = sdk(created, "Contacts").contacts
    assert (acme.contact_number, acme.email_address, acme.first_name) == (
        "ACC-1",
        "ap@acme.example",
        "Ada",
    )
    assert acme.is_customer is False  # "Cannot be set via PUT or POST"
    pobox = next(a for a in acme.addresses if a.address_type == "POBOX")
    assert (pobox.address_line1, pobox.city) == ("1 Main St", "Leeds")

    taken = xero.call("PUT", "/Contacts", {"Contacts": [{"Name": "bank west"}]}, schema="Contacts")
    assert taken.status_code == 400
    (element,) = taken.json()["Elements"]
    assert messages(element) == [NAME_TAKEN.format("bank west")] and element["HasValidationErrors"]
    batch = [
        {"Name": "Old Customer Ltd"},  # only ARCHIVED contacts have that name: allowed
        {"Name": "Other", "ContactNumber": "ACC-1"},
        {"ContactNumber": "NO-NAME"},
        {"Name": "Twice"},
        {"Name": "Twice"},
    ]
    mixed = xero.call("PUT", "/Contacts", {"Contacts": batch}, params={"summarizeErrors": "false"})
    results = sdk(mixed, "Contacts").contacts
    assert [r.status_attribute_string for r in results] == ["OK", "ERROR", "ERROR", "OK", "ERROR"]
    assert (
        results[1].has_validation_errors
        and "contact number ACC-1" in results[1].validation_errors[0].message
    )
    assert [e.message for e in results[2].validation_errors] == ["Contact Name must be specified"]
    assert results[4].validation_errors[0].message == NAME_TAKEN.format("Twice")


def test_contact_post_updates_by_id_number_or_name(xero: Xero) -> None:
    ridgeway = xero.call("GET", "/Contacts/RIDGEWAY", template="/Contacts/{ContactNumber}").json()[
        "Contacts"
    ][0]
    by_id = {"ContactID": ridgeway["ContactID"], "EmailAddress": "ar@ridgeway.example"}
    updated = xero.call("POST", "/Contacts", {"Contacts": [by_id]}, schema="Contacts")
    (contact,) = sdk(updated, "Contacts").contacts
    assert (contact.name, contact.email_address) == ("Ridgeway University", "ar@ridgeway.example")

    by_number = {
        "ContactNumber": "RIDGEWAY",
        "Name": "Ridgeway Uni",
        "Addresses": [{"AddressType": "STREET", "City": "Oxford"}],
    }
    renamed = xero.call("POST", "/Contacts", {"Contacts": [by_number]}, schema="Contacts").json()
    assert (renamed["Contacts"][0]["ContactID"], renamed["Contacts"][0]["Name"]) == (
        ridgeway["ContactID"],
        "Ridgeway Uni",
    )
    by_name = {"Name": "Bank West", "ContactNumber": None, "FirstName": "Bea"}
    bank = xero.call(
        "POST",
        "/Contacts",
        {"Contacts": [{k: v for k, v in by_name.items() if v}]},
        schema="Contacts",
    ).json()["Contacts"][0]
    assert (bank["FirstName"], bank["EmailAddress"]) == ("Bea", "ap@bankwest.example")
    created = xero.call(
        "POST", "/Contacts", {"Contacts": [{"Name": "Brand New", "ContactNumber": "BN-1"}]}
    )
    assert created.json()["Contacts"][0]["ContactNumber"] == "BN-1"
    assert len(xero.call("GET", "/Contacts").json()["Contacts"]) == 3

    clash = {"ContactID": ridgeway["ContactID"], "Name": "Bank West"}
    refused = xero.call("POST", "/Contacts", {"Contacts": [clash]}, schema="Contacts")
    assert messages(refused.json()["Elements"][0]) == [NAME_TAKEN.format("Bank West")]
    template = "/Contacts/{ContactID}"
    path = f"/Contacts/{ridgeway['ContactID']}"
    one = xero.call("POST", path, {"Contacts": [{"LastName": "Dean"}]}, template=template)
    assert one.json()["Contacts"][0]["LastName"] == "Dean"
    street = next(a for a in one.json()["Contacts"][0]["Addresses"] if a["AddressType"] == "STREET")
    assert street["City"] == "Oxford"
    ghost = {"ContactID": "2c9a8b9e-0000-4000-8000-000000000000", "Name": "Ghost"}
    unknown = xero.call(
        "POST", "/Contacts", {"Contacts": [ghost]}, params={"summarizeErrors": "false"}
    )
    assert "could not be found" in unknown.json()["Contacts"][0]["ValidationErrors"][0]["Message"]


def test_archived_contacts_and_their_reactivation(xero: Xero) -> None:
    xero.books(contacts=[{"name": "Bank West", "status": "ARCHIVED"}])
    assert [c["Name"] for c in xero.call("GET", "/Contacts").json()["Contacts"]] == [
        "Ridgeway University"
    ]
    fresh = xero.call("PUT", "/Contacts", {"Contacts": [{"Name": "Bank West"}]}, schema="Contacts")
    assert fresh.status_code == 200  # the archived one no longer holds the name
    back = {"ContactNumber": "OLD-1", "ContactStatus": "ACTIVE"}
    revived = xero.call("POST", "/Contacts", {"Contacts": [back]}, schema="Contacts")
    assert revived.json()["Contacts"][0]["ContactStatus"] == "ACTIVE"
    bank_west = xero.call(
        "GET", "/Contacts", params={"includeArchived": "true", "where": 'ContactStatus=="ARCHIVED"'}
    )
    (archived,) = bank_west.json()["Contacts"]
    again = {"ContactID": archived["ContactID"], "ContactStatus": "ACTIVE"}
    clash = xero.call("POST", "/Contacts", {"Contacts": [again]}, schema="Contacts")
    assert messages(clash.json()["Elements"][0]) == [NAME_TAKEN.format("Bank West")]
    nobody = xero.control({"contacts": [{"number": "NOPE", "status": "ARCHIVED"}]})
    assert nobody.status_code == 400


# ----- the gate, idempotency, control, reset ------------------------------------------------------
def test_the_invoices_gate_guards_reference_data(xero: Xero, xero_server: ServerHandle) -> None:
    for path in ("/Organisation", "/Accounts", "/Contacts", "/Items", "/TrackingCategories"):
        bare = httpx.get(
            f"{xero_server.url}{API}{path}", headers={"xero-tenant-id": xero.tenants[0]}
        )
        assert bare.status_code == 401 and "Bearer" in bare.headers["WWW-Authenticate"]
        assert (
            xero.call("GET", path, tenant="9b0c6c1e-0000-4000-8000-000000000000").status_code == 403
        )
    ok = xero.call("GET", "/TaxRates")
    assert ok.headers["X-MinLimit-Remaining"] == "59"
    xero.http.post("/_sandbox/faults", json={"next": ["500"]})
    assert xero.call("GET", "/Currencies").status_code == 500
    xero.http.post("/_sandbox/limits", json={"per_day": 3})
    xero.call("GET", "/Currencies")
    limited = xero.call("GET", "/Currencies")
    assert (limited.status_code, limited.headers["X-Rate-Limit-Problem"]) == (429, "day")
    state = xero.http.get("/_sandbox/state").json()["accounting"]
    assert state["calls"][xero.tenants[0]] >= 3 and state["refused"][xero.tenants[0]] == {"day": 1}


def test_idempotency_key_replays_a_create(xero: Xero) -> None:
    body = {"Contacts": [{"Name": "Keyed Co", "ContactNumber": "K-1"}]}
    xero.http.post("/_sandbox/faults", json={"next": ["drop_after_store"]})
    with pytest.raises(httpx.HTTPError):
        xero.call("PUT", "/Contacts", body, schema="Contacts", key="contact-k-1")
    replay = xero.call("PUT", "/Contacts", body, schema="Contacts", key="contact-k-1")
    assert replay.status_code == 200
    listed = xero.call("GET", "/Contacts", params={"where": 'ContactNumber=="K-1"'}).json()
    assert [c["ContactID"] for c in listed["Contacts"]] == [
        replay.json()["Contacts"][0]["ContactID"]
    ]
    other = {"Items": [item("KEYED")]}
    conflict = xero.call("PUT", "/Items", other, schema="Items", key="contact-k-1")
    assert conflict.status_code == 400 and "already used" in conflict.json()["Message"]


def test_control_by_tenant_id_state_and_reset_to_seed(xero: Xero, xero_sandbox: Any) -> None:
    tenant = xero.tenants[1]
    summary = xero.books(
        tenant,
        accounts=[{"code": "201", "status": "ARCHIVED"}],
        lock_dates={"period": "2025-03-31"},
        currencies={"add": ["CAD"]},
    )
    assert summary["tenant_id"] == tenant and summary["organisation"] == US
    assert summary["archived_accounts"] == ["201", "206"] and "CAD" in summary["currencies"]
    assert xero_sandbox.books.for_tenant(tenant).organisation.lock_date == date(2025, 3, 31)
    xero.call("PUT", "/Contacts", {"Contacts": [{"Name": "Temp"}]}, tenant=tenant)
    xero.call("PUT", "/Items", {"Items": [item("TEMP")]}, tenant=tenant)
    state = xero.http.get("/_sandbox/state").json()["books"]
    assert state[tenant]["period_lock_date"] == "2025-03-31" and "TEMP" in state[tenant]["items"]
    bad = xero.control({"lock_dates": {"period": "soon"}}, tenant)
    assert bad.status_code == 400
    assert xero.control({}, "Nobody Ltd").status_code == 404

    xero.http.post("/_sandbox/reset")
    xero.token = xero_sandbox.grant(list(DEFAULT_ORGS))["access_token"]  # the reset forgot it
    assert xero.http.get("/_sandbox/state").json()["books"] == {}
    org = xero.call("GET", "/Organisation", tenant=tenant).json()["Organisations"][0]
    assert "PeriodLockDate" not in org
    accounts = xero.call("GET", "/Accounts", tenant=tenant, params={"where": 'Code=="201"'})
    assert accounts.json()["Accounts"][0]["Status"] == "ACTIVE"
    assert "CAD" not in str(xero.call("GET", "/Currencies", tenant=tenant).json())
    assert [c["Name"] for c in xero.call("GET", "/Contacts", tenant=tenant).json()["Contacts"]] == [
        "Bank West",
        "Ridgeway University",
    ]
    assert "TEMP" not in [
        i["Code"] for i in xero.call("GET", "/Items", tenant=tenant).json()["Items"]
    ]
