"""Xero Accounting API client: invoices and credit notes, contacts and reference data.

One request path for both collections (a ``_Collection`` names what differs). Answers map onto
``config.errors`` through the shared HTTP layer's status map (``tasks.http.error_for``: 429,
5xx, timeouts, 401/403, 404); what is Xero's own is how it refuses content: per-document
``InvoiceResult.errors`` from batches, or ``ValidationFailed`` / ``NotEditable`` (paid, voided,
locked period) from single updates and refused requests. The bearer token and its one replay
after a 401 are ``tasks.http.BearerAuth``. The client never retries by itself: the sync's poster
does (``tasks.retries`` says why). Money is Decimal both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from config.errors import NotEditable, NotFound, TransientError, ValidationFailed
from tasks.http import BearerAuth, call, new_client
from tasks.xero import money_json

MAX_BATCH = 50
MAX_KEY_LENGTH = 128
LOOKUP_CHUNK = 25
# Documents that no longer count (deleted drafts, voided approved ones): a lookup that finds one
# of these and a live one with the same number or reference prefers the live one.
WITHDRAWN = frozenset({"DELETED", "VOIDED"})
# Xero's words for a document that exists but may not change (sandbox/xero/document_rules.py
# cites each): a status that refuses edits, a payment or credit allocated, a locked period.
NOT_EDITABLE_MARKERS = (
    "not of valid status for modification",
    "payment or credit note allocated",
    "period lock date",
    "lock date",
)


@dataclass(frozen=True)
class _Collection:
    name: str
    id_field: str
    number_field: str
    by_numbers_param: str | None  # Invoices filter by InvoiceNumbers=; credit notes use where=


INVOICES = _Collection("Invoices", "InvoiceID", "InvoiceNumber", "InvoiceNumbers")
CREDIT_NOTES = _Collection("CreditNotes", "CreditNoteID", "CreditNoteNumber", None)


@dataclass(frozen=True)
class InvoiceResult:
    """Xero's verdict on one document of a batch (credit notes use the same shape: their
    CreditNoteID / CreditNoteNumber land in ``invoice_id`` / ``invoice_number``)."""

    invoice_id: str | None
    invoice_number: str | None
    status: str | None
    errors: list[str] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether Xero took the document."""
        return not self.errors

    @property
    def reference(self) -> str | None:
        """The document's ``Reference`` as Xero answered it (refusals echo it too)."""
        value = self.document.get("Reference")
        return value if isinstance(value, str) and value else None

    @property
    def not_editable_reason(self) -> str | None:
        """Xero's message when the document exists but may not change (paid, voided, locked)."""
        return _not_editable(self.errors)

    def raise_for_errors(self) -> None:
        """``NotEditable`` or ``ValidationFailed`` when Xero refused this document."""
        if self.errors:
            raise _refusal(self.errors, self.invoice_number or self.invoice_id)


def _not_editable(messages: Iterable[str]) -> str | None:
    for message in messages:
        if any(marker in message.lower() for marker in NOT_EDITABLE_MARKERS):
            return message
    return None


def _refusal(messages: list[str], what: str | None) -> ValidationFailed | NotEditable:
    reason = _not_editable(messages)
    label = what or "document"
    if reason is not None:
        return NotEditable(f"Xero refused to change {label}: {reason}", reason=reason)
    return ValidationFailed(f"Xero refused {label}: {'; '.join(messages)}", messages=messages)


def _messages(element: dict[str, Any]) -> list[str]:
    return [
        str(error.get("Message", ""))
        for error in element.get("ValidationErrors") or []
        if isinstance(error, dict)
    ]


def element_errors(element: dict[str, Any]) -> list[str]:
    """Xero's messages for one element of a batch answer (empty when it was taken). Invoices
    and credit notes flag a refusal with ``HasErrors``; contacts and payments with
    ``HasValidationErrors`` (the spec's examples)."""
    flagged = element.get("HasErrors") or element.get("HasValidationErrors")
    return _messages(element) if flagged else []


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")


def _where_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class XeroAccountingClient:
    """Invoices, credit notes, contacts and reference data of one Xero tenant.

    ``token`` is called before every request (the project's token provider refreshes as
    needed). ``replace_token``, when given, is told of a token Xero refused with 401 and returns
    a fresh one; the call is then tried once more before ``AuthError`` (a clock that disagrees
    with Xero's must not disable an integration): both are ``tasks.http.BearerAuth``. ``http``
    lets callers share a connection pool; the client closes only its own.
    """

    def __init__(
        self,
        api_url: str,
        tenant_id: str,
        token: Callable[[], str],
        *,
        timeout: float = 30,
        http: httpx.Client | None = None,
        replace_token: Callable[[str], str] | None = None,
    ) -> None:
        self.base_url = api_url.rstrip("/") + "/api.xro/2.0"
        self.tenant_id = tenant_id
        self._auth = BearerAuth(token, replace_token)
        self._own_http = http is None
        self._http = http or new_client(timeout=timeout)
        self._timeout = timeout

    def close(self) -> None:
        """Close the client's connections."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> XeroAccountingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- invoices --------------------------------------------------------------------------
    def post_invoices(
        self, invoices: list[dict[str, Any]], *, idempotency_key: str, update: bool = False
    ) -> list[InvoiceResult]:
        """Create (PUT) or create-or-update (POST) up to 50 invoices in one call."""
        return self._post(INVOICES, invoices, idempotency_key, update)

    def update_invoice(
        self, invoice_id: str, invoice: dict[str, Any], *, idempotency_key: str
    ) -> InvoiceResult:
        """Change one invoice; raises ``NotEditable``/``ValidationFailed`` when refused."""
        return self._update(INVOICES, invoice_id, invoice, idempotency_key)

    def find_invoices_by_number(self, numbers: list[str]) -> dict[str, dict[str, Any]]:
        """Existing invoices by InvoiceNumber (absent numbers are simply missing)."""
        return self._find_by_number(INVOICES, numbers)

    def find_invoices_by_reference(self, references: list[str]) -> dict[str, dict[str, Any]]:
        """Existing invoices by Reference (``where=Reference=="..."``; Reference is one of the
        filters Xero optimises for invoices, as listed at https://cdn.cdata.com/help/DXK/rcmd/
        pg_accountingtable-invoices.htm); absent references are simply missing."""
        return self._find_by(INVOICES, "Reference", references)

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """One invoice; ``NotFound`` when Xero has none with that id."""
        return self._get(INVOICES, invoice_id)

    # ----- credit notes ----------------------------------------------------------------------
    def post_credit_notes(
        self, credit_notes: list[dict[str, Any]], *, idempotency_key: str, update: bool = False
    ) -> list[InvoiceResult]:
        """Create (PUT) or create-or-update (POST) up to 50 credit notes in one call."""
        return self._post(CREDIT_NOTES, credit_notes, idempotency_key, update)

    def update_credit_note(
        self, credit_note_id: str, credit_note: dict[str, Any], *, idempotency_key: str
    ) -> InvoiceResult:
        """Update one credit note in place."""
        return self._update(CREDIT_NOTES, credit_note_id, credit_note, idempotency_key)

    def find_credit_notes_by_number(self, numbers: list[str]) -> dict[str, dict[str, Any]]:
        """The credit notes with these numbers, by number."""
        return self._find_by_number(CREDIT_NOTES, numbers)

    def find_credit_notes_by_reference(self, references: list[str]) -> dict[str, dict[str, Any]]:
        """The credit notes with these References, by Reference."""
        return self._find_by(CREDIT_NOTES, "Reference", references)

    def get_credit_note(self, credit_note_id: str) -> dict[str, Any]:
        """One credit note by id."""
        return self._get(CREDIT_NOTES, credit_note_id)

    # ----- reference data and contacts ------------------------------------------------------
    def read(self, collection: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every element of one reference collection (``Accounts``, ``TaxRates``, ...): one
        call (those lists are not paged by Xero). ``GET /Organisation`` answers its one
        element in ``Organisations``."""
        body = self._call("GET", f"/{collection}", params=params)
        key = "Organisations" if collection == "Organisation" else collection
        return [e for e in body.get(key) or [] if isinstance(e, dict)]

    def post_contacts(
        self, contacts: list[dict[str, Any]], *, idempotency_key: str
    ) -> list[dict[str, Any]]:
        """Create or update up to ``MAX_BATCH`` contacts in one call; each answer element has
        its own verdict (``element_errors`` reads it)."""
        if len(contacts) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} Contacts per call, got {len(contacts)}")
        _check_key(idempotency_key)
        if not contacts:
            return []
        body = self._call(
            "POST",
            "/Contacts",
            params={"summarizeErrors": "false"},
            body={"Contacts": contacts},
            idempotency_key=idempotency_key,
        )
        return [e for e in body.get("Contacts") or [] if isinstance(e, dict)]

    # ----- shared ----------------------------------------------------------------------------
    def _post(
        self, coll: _Collection, docs: list[dict[str, Any]], key: str, update: bool
    ) -> list[InvoiceResult]:
        if len(docs) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} {coll.name} per call, got {len(docs)}")
        _check_key(key)
        if not docs:
            return []
        body = self._call(
            "POST" if update else "PUT",
            f"/{coll.name}",
            params={"summarizeErrors": "false", "unitdp": "4"},
            body={coll.name: docs},
            idempotency_key=key,
        )
        return [self._result(coll, element) for element in body.get(coll.name) or []]

    def _update(
        self, coll: _Collection, doc_id: str, doc: dict[str, Any], key: str
    ) -> InvoiceResult:
        _check_key(key)
        body = self._call(
            "POST",
            f"/{coll.name}/{doc_id}",
            params={"summarizeErrors": "false", "unitdp": "4"},
            body={coll.name: [{**doc, coll.id_field: doc_id}]},
            idempotency_key=key,
        )
        elements = body.get(coll.name) or []
        if not elements:
            raise TransientError(f"Xero answered the update of {doc_id} without the document")
        result = self._result(coll, elements[0])
        result.raise_for_errors()
        return result

    def _find_by_number(self, coll: _Collection, numbers: list[str]) -> dict[str, dict[str, Any]]:
        return self._find_by(coll, coll.number_field, numbers)

    def _find_by(
        self, coll: _Collection, field_name: str, values: list[str]
    ) -> dict[str, dict[str, Any]]:
        """The documents whose ``field_name`` is one of ``values``, by that value; where several
        share one (a withdrawn document and its successor), the live one."""
        wanted = list(dict.fromkeys(v for v in values if v))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            by_numbers = field_name == coll.number_field and coll.by_numbers_param
            if by_numbers and not any("," in n for n in chunk):
                params = {str(coll.by_numbers_param): ",".join(chunk), "unitdp": "4"}
            else:
                clauses = [f"{field_name}=={_where_quote(n)}" for n in chunk]
                params = {"where": " OR ".join(clauses), "unitdp": "4"}
            body = self._call("GET", f"/{coll.name}", params=params)
            for doc in body.get(coll.name) or []:
                value = doc.get(field_name)
                if value not in chunk:
                    continue
                held = found.get(value)
                if held is None or (not _live(held) and _live(doc)):
                    found[value] = doc
        return found

    def _get(self, coll: _Collection, doc_id: str) -> dict[str, Any]:
        body = self._call("GET", f"/{coll.name}/{doc_id}", params={"unitdp": "4"})
        docs = body.get(coll.name) or []
        if not docs:
            raise NotFound(f"no {coll.name} {doc_id} in Xero")
        return docs[0]

    @staticmethod
    def _result(coll: _Collection, element: dict[str, Any]) -> InvoiceResult:
        errors = element_errors(element)
        return InvoiceResult(
            invoice_id=element.get(coll.id_field),
            invoice_number=element.get(coll.number_field),
            status=element.get("Status"),
            errors=errors,
            document=element,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"xero-tenant-id": self.tenant_id, "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = money_json.dumps(body)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        what = f"Xero {method} {path}"
        response = call(
            self._http,
            method,
            self.base_url + path,
            what=what,
            refused=_refused,
            params=params,
            content=content,
            headers=headers,
            timeout=self._timeout,
            auth=self._auth,
        )
        answer = _body(response)
        if answer is None:
            raise TransientError(f"{what}: Xero answered {response.status_code} unreadably")
        return answer


def _live(doc: dict[str, Any]) -> bool:
    """Whether a document Xero holds still counts (not deleted, not voided)."""
    return doc.get("Status") not in WITHDRAWN


def _body(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object of an answer (money as Decimal); ``{}`` when empty, ``None`` if not one."""
    try:
        body = money_json.loads(response.content) if response.content else {}
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _refused(response: httpx.Response, what: str) -> ValidationFailed | NotEditable:
    """A request Xero refused (400 and the like), in Xero's own words: ``NotEditable`` when the
    document may not change, else ``ValidationFailed``."""
    body = _body(response)
    if body is None:
        return ValidationFailed(f"{what}: Xero answered {response.status_code}", messages=[])
    messages = [m for element in body.get("Elements") or [] for m in _messages(element)]
    messages = messages or [str(body.get("Message") or body.get("Detail") or response.status_code)]
    return _refusal(messages, what)
