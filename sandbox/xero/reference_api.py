"""The organisation's reference data over the Accounting API, behind the invoices' own gate.

``reference_routes(sandbox)`` creates ``sandbox.books`` (a ``BooksStore`` over the identity
sandbox's organisations) and returns the routes: ``GET /Organisation``, ``/Currencies``,
``/Accounts[/{id}]``, ``/TaxRates``, ``GET/PUT /TrackingCategories[/{id}[/Options]]``, plus the
Items (``sandbox.xero.items_api``) and Contacts (``sandbox.xero.contacts_api``) endpoints. Every
API call goes through ``sandbox.accounting.guarded`` (bearer token 401, tenant 403, rate limits
429, faults, ``Idempotency-Key``), so it counts against the same per-tenant limits as invoices.
``POST /_sandbox/tenants/{tenant}/books`` (no auth) changes a tenant's seed for tests and demos;
``GET /_sandbox/state`` gains a ``books`` section; ``POST /_sandbox/reset`` reseeds every tenant.

Shapes follow ``xero_accounting.yaml`` (v16.1.0) and the Xero docs cited where a rule is made.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.xero import reference_wire as rw
from sandbox.xero import wire
from sandbox.xero.books import (
    Account,
    Books,
    BooksStore,
    Organisation,
    TaxRate,
    TrackingCategory,
    TrackingOption,
)
from sandbox.xero.books_control import changes
from sandbox.xero.books_control import summary as books_summary
from sandbox.xero.contacts_api import ContactsApi
from sandbox.xero.idempotency import StoredAnswer
from sandbox.xero.items_api import ItemsApi

API = "/api.xro/2.0"
RATE = Decimal("0.0001")  # TaxRates docs: rates are "decimal to 4dp", e.g. 12.5000
ACCOUNT_FIELDS = (
    "AccountID", "Code", "Name", "Status", "Type", "Class", "TaxType", "SystemAccount",
    "BankAccountType", "CurrencyCode", "EnablePaymentsToAccount",
)  # fmt: skip
TAX_FIELDS = ("TaxType", "Name", "Status", "ReportTaxType", "CanApplyToRevenue")
TRACKING_FIELDS = ("TrackingCategoryID", "Name", "Status")
# Tracking: "A Xero organisation can have a maximum of two ACTIVE tracking categories and four
# tracking categories total (ACTIVE and ARCHIVED)" (developer.xero.com/documentation/api/
# accounting/trackingcategories). Xero's wording for either refusal is not documented.
MAX_ACTIVE_CATEGORIES, MAX_CATEGORIES = 2, 4
TOO_MANY_ACTIVE = "You can only have 2 active tracking categories"
TOO_MANY = "You can only have 4 tracking categories, active and archived"


class ReferenceApi:
    """The reference-data endpoints and their control endpoint, over one ``BooksStore``."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.books = BooksStore(sandbox.orgs, sandbox.clock.now)
        self.items = ItemsApi(self.books, sandbox.clock.now)
        self.contacts = ContactsApi(self.books, sandbox.clock.now)

    def gate(self, handler: rw.Handler) -> rw.Endpoint:
        """An endpoint that passes the invoices' gate, then runs ``handler``."""

        async def endpoint(request: Request) -> Response:
            return await self.sandbox.accounting.guarded(request, handler)

        return endpoint

    def _now(self) -> float:
        return float(self.sandbox.clock.now())

    # ----- organisation, currencies, accounts, tax rates -----------------------------------------
    def organisation(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        with self.books.lock:
            org = render_organisation(self.books.for_tenant(tenant_id).organisation)
        return rw.collection("Organisations", [org], self._now())

    def currencies(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        with self.books.lock:
            books = self.books.for_tenant(tenant_id)
            rows = [{"Code": c, "Description": d} for c, d in books.currencies.items()]
        return self._listed(request, "Currencies", rows, ("Code", "Description"))

    def accounts(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        account_id = request.path_params.get("account_id")
        with self.books.lock:
            books = self.books.for_tenant(tenant_id)
            if account_id is not None:
                acc = books.account(account_id=account_id.strip().lower())
                if acc is None or not rw.is_uuid(account_id):
                    return rw.not_found()
                return rw.collection("Accounts", [render_account(acc, books)], self._now())
            rows = [render_account(acc, books) for acc in books.accounts]
        # GET /Accounts is "the full chart of accounts" (spec summary): archived ones included.
        return self._listed(request, "Accounts", rows, ACCOUNT_FIELDS)

    def tax_rates(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        with self.books.lock:
            rows = [render_tax_rate(t) for t in self.books.for_tenant(tenant_id).tax_rates]
        # Whether Xero lists DELETED rates without a filter is not documented: all are listed,
        # and ``where=Status=="ACTIVE"`` narrows them.
        return self._listed(request, "TaxRates", rows, TAX_FIELDS)

    def _listed(
        self, request: Request, name: str, rows: list[dict[str, Any]], fields: tuple[str, ...]
    ) -> StoredAnswer:
        listed = rw.filtered(rows, request.query_params.get("where"), fields)
        if isinstance(listed, StoredAnswer):
            return listed
        return rw.collection(name, listed, self._now())

    # ----- tracking categories -------------------------------------------------------------------
    def tracking(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        category_id = request.path_params.get("category_id")
        with self.books.lock:
            books = self.books.for_tenant(tenant_id)
            if request.method == "PUT":
                return self._create_category(books, body)
            if category_id is not None:
                cat = _category(books, category_id)
                if cat is None:
                    return rw.not_found()
                # By id every option is shown; the docs do not say whether archived ones are.
                rows = [render_category(cat, True)]
                return rw.collection("TrackingCategories", rows, self._now())
            everything = rw.truthy(request.query_params.get("includeArchived"))
            shown = [c for c in books.tracking if everything or c.status == "ACTIVE"]
            rows = [render_category(c, everything) for c in shown]
        return self._listed(request, "TrackingCategories", rows, TRACKING_FIELDS)

    def _create_category(self, books: Books, body: bytes) -> StoredAnswer:
        element = rw.load_object(body)
        if element is None:
            return rw.bad_body("TrackingCategory")
        errors: list[str] = []
        name = (rw.text(element, "Name", errors, limit=100) or "").strip()
        if not name and not errors:
            errors.append("Tracking Category Name must be specified")  # wording not documented
        elif books.tracking_category(name) is not None:
            errors.append(f"The tracking category name {name} is already in use")  # not documented
        if sum(c.status == "ACTIVE" for c in books.tracking) >= MAX_ACTIVE_CATEGORIES:
            errors.append(TOO_MANY_ACTIVE)
        elif len(books.tracking) >= MAX_CATEGORIES:
            errors.append(TOO_MANY)
        if errors:
            return _refused({"Name": name} if name else {}, errors)
        cat = TrackingCategory(rw.new_id(), name, [])
        books.tracking.append(cat)
        return rw.collection("TrackingCategories", [render_category(cat, True)], self._now())

    def options(self, request: Request, tenant_id: str, body: bytes) -> StoredAnswer:
        payload = rw.load_object(body)
        if payload is None:
            return rw.bad_body("TrackingOption")
        # The SDK sends one TrackingOption; an ``Options`` list is taken too.
        wanted = payload["Options"] if isinstance(payload.get("Options"), list) else [payload]
        with self.books.lock:
            cat = _category(self.books.for_tenant(tenant_id), request.path_params["category_id"])
            if cat is None:
                return rw.not_found()
            errors: list[str] = []
            names: list[str] = []
            for element in wanted:
                if not isinstance(element, dict):
                    return rw.bad_body("TrackingOption")
                name = (rw.text(element, "Name", errors, limit=100) or "").strip()
                if not name:
                    errors.append("Tracking Option Name must be specified")  # not documented
                elif cat.option(name) is not None or name.lower() in map(str.lower, names):
                    # Names are unique within a category (Xero's UI refuses a repeat); the
                    # API's wording is not documented.
                    errors.append(f"The tracking option name {name} is already in use")
                names.append(name)
            if errors:
                return _refused({"Name": names[0]} if names and names[0] else {}, errors)
            added = [TrackingOption(rw.new_id(), name) for name in names]
            cat.options.extend(added)
        rows = [
            {"TrackingOptionID": o.option_id, "Name": o.name, "Status": o.status} for o in added
        ]
        return rw.collection("Options", rows, self._now())

    # ----- control: change a tenant's seed -------------------------------------------------------
    async def control_books(self, request: Request) -> Response:
        """Change a tenant's books. ``{tenant}``: organisation name or tenant id. Body (every key
        optional, all checked before anything changes)::

            {"accounts":   [{"code": "200", "status": "ARCHIVED" | "ACTIVE"}],
             "contacts":   [{"number": "OLD-1" | "name": "Bank West",
                             "status": "ARCHIVED" | "ACTIVE"}],
             "lock_dates": {"period": "2025-01-31" | null, "end_of_year": "2024-12-31" | null},
             "currencies": {"add": ["JPY"], "remove": ["NZD"]},
             "tax_rates":  [{"tax_type": "RROUTPUT", "status": "ACTIVE" | "DELETED" | "ARCHIVED"}],
             "tracking":   [{"category": "Region", "option": "North" (optional),
                             "status": "ACTIVE" | "ARCHIVED"}]}

        Answers the tenant's summary (what ``GET /_sandbox/state`` shows under ``books``)."""
        tenant = request.path_params["tenant"]
        tenant_id = dict(self.sandbox.orgs).get(tenant, tenant)
        if tenant_id not in self.sandbox.orgs.values():
            return JSONResponse({"error": f"no organisation or tenant {tenant}"}, 404)
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            with self.books.lock:
                books = self.books.for_tenant(tenant_id)
                for change in changes(books, payload, self._now()):
                    change()
                summary = books_summary(books)
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"tenant_id": tenant_id, **summary})

    def state(self) -> dict[str, Any]:
        with self.books.lock:
            return {
                "books": {t: books_summary(self.books.for_tenant(t)) for t in self.books.tenants()}
            }

    def routes(self) -> list[BaseRoute]:
        gate = self.gate
        return [
            Route(f"{API}/Organisation", gate(self.organisation), methods=["GET"]),
            Route(f"{API}/Currencies", gate(self.currencies), methods=["GET"]),
            Route(f"{API}/Accounts", gate(self.accounts), methods=["GET"]),
            Route(f"{API}/Accounts/{{account_id}}", gate(self.accounts), methods=["GET"]),
            Route(f"{API}/TaxRates", gate(self.tax_rates), methods=["GET"]),
            Route(f"{API}/TrackingCategories", gate(self.tracking), methods=["GET", "PUT"]),
            Route(f"{API}/TrackingCategories/{{category_id}}", gate(self.tracking)),
            Route(
                f"{API}/TrackingCategories/{{category_id}}/Options",
                gate(self.options),
                methods=["PUT"],
            ),
            *self.items.routes(gate, API),
            *self.contacts.routes(gate, API),
            Route("/_sandbox/tenants/{tenant}/books", self.control_books, methods=["POST"]),
        ]


def reference_routes(sandbox: Any) -> list[BaseRoute]:
    """Routes for ``create_app``; hangs the books on ``sandbox.books`` (the invoice rules read
    them there) and registers the reset and state hooks."""
    api = ReferenceApi(sandbox)
    sandbox.books = api.books
    sandbox.reference = api
    sandbox.reset_hooks.append(api.books.reset)
    sandbox.extra_state.append(api.state)
    return api.routes()


# ----- rendering ---------------------------------------------------------------------------------
def render_organisation(org: Organisation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "OrganisationID": org.organisation_id,
        "Name": org.name,
        "LegalName": org.legal_name,
        "PaysTax": org.pays_tax,
        "Version": org.version,
        "OrganisationType": org.organisation_type,
        "BaseCurrency": org.base_currency,
        "CountryCode": org.country_code,
        "IsDemoCompany": org.is_demo_company,
        "OrganisationStatus": "ACTIVE",
        "FinancialYearEndDay": org.financial_year_end_day,
        "FinancialYearEndMonth": org.financial_year_end_month,
        "DefaultSalesTax": "Tax Exclusive",
        "DefaultPurchasesTax": "Tax Exclusive",
        "CreatedDateUTC": wire.ms_datetime(org.created, offset=False),
        "Timezone": org.timezone,
        "OrganisationEntityType": org.organisation_type,
        "ShortCode": org.short_code,
        "Class": "DEMO" if org.is_demo_company else "PREMIUM",
        "Edition": "BUSINESS",
        "Addresses": [],
        "Phones": [],
        "ExternalLinks": [],
        "PaymentTerms": {},
    }
    # Lock dates are absent when unset (the SDK refuses a null ms-date).
    if org.period_lock_date:
        out["PeriodLockDate"] = wire.ms_date(org.period_lock_date)
    if org.end_of_year_lock_date:
        out["EndOfYearLockDate"] = wire.ms_date(org.end_of_year_lock_date)
    return out


def render_account(acc: Account, books: Books) -> dict[str, Any]:
    bank = acc.type == "BANK"
    out: dict[str, Any] = {
        "AccountID": acc.account_id,
        "Code": acc.code,
        "Name": acc.name,
        "Status": acc.status,
        "Type": acc.type,
        "TaxType": acc.tax_type or "NONE",
        "Class": acc.account_class,
        "EnablePaymentsToAccount": acc.enable_payments,
        "ShowInExpenseClaims": False,
        "BankAccountType": "BANK" if bank else "",
        "HasAttachments": False,
        "UpdatedDateUTC": wire.ms_datetime(acc.updated),
        "AddToWatchlist": False,
    }
    if acc.description:
        out["Description"] = acc.description
    if acc.system_account:
        out["SystemAccount"] = acc.system_account
    if bank:
        out["BankAccountNumber"] = acc.bank_account_number or ""
        out["CurrencyCode"] = acc.currency_code or books.organisation.base_currency
    return out


def render_tax_rate(rate: TaxRate) -> dict[str, Any]:
    # DisplayTaxRate is the components' sum and EffectiveRate the compounded one; for a rate
    # without compound components they agree (the spec's examples). Xero's exact display rule
    # for compound rates is not documented.
    display = sum((c.rate for c in rate.components), Decimal(0))
    return {
        "Name": rate.name,
        "TaxType": rate.tax_type,
        "ReportTaxType": rate.report_tax_type,
        "CanApplyToAssets": "ASSET" in rate.applies_to,
        "CanApplyToEquity": "EQUITY" in rate.applies_to,
        "CanApplyToExpenses": "EXPENSE" in rate.applies_to,
        "CanApplyToLiabilities": "LIABILITY" in rate.applies_to,
        "CanApplyToRevenue": "REVENUE" in rate.applies_to,
        "DisplayTaxRate": display.quantize(RATE),
        "EffectiveRate": rate.effective_rate.quantize(RATE),
        "Status": rate.status,
        "TaxComponents": [
            {"Name": c.name, "Rate": c.rate.quantize(RATE), "IsCompound": c.is_compound,
             "IsNonRecoverable": c.is_non_recoverable}
            for c in rate.components
        ],
    }  # fmt: skip


def render_category(cat: TrackingCategory, include_archived: bool) -> dict[str, Any]:
    # includeArchived: "Categories and options with a status of ARCHIVED will be included".
    options = [o for o in cat.options if include_archived or o.status == "ACTIVE"]
    return {
        "Name": cat.name,
        "Status": cat.status,
        "TrackingCategoryID": cat.category_id,
        "Options": [
            {"TrackingOptionID": o.option_id, "Name": o.name, "Status": o.status} for o in options
        ],
    }


def _category(books: Books, category_id: str) -> TrackingCategory | None:
    wanted = category_id.strip().lower()
    return next((c for c in books.tracking if c.category_id == wanted), None)


def _refused(element: dict[str, Any], errors: list[str]) -> StoredAnswer:
    item = {**element, "ValidationErrors": [{"Message": m} for m in errors]}
    return rw.answer(wire.validation_exception([item]), 400)
