"""The seedable generator and the sandbox's data operations, called directly."""

from __future__ import annotations

import json
import time
import typing
from decimal import Decimal

from m3ter.types.bill_response import LineItem as SdkLineItem

from sandbox.m3ter import generator as gen
from sandbox.m3ter.queries import decode_token
from sandbox.m3ter.state import M3terSandbox
from sandbox.m3ter.wire import dumps, loads
from tasks.m3ter.models import LINE_ITEM_TYPES, Bill


def _all_bills(sb: M3terSandbox) -> list[dict]:
    return [sb.bill(r.id) for r in sb.bills]


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = M3terSandbox(seed=7), M3terSandbox(seed=7), M3terSandbox(seed=8)
    assert dumps(_all_bills(a)) == dumps(_all_bills(b))
    assert dumps(a.accounts) == dumps(b.accounts)
    assert dumps(a.mappings) == dumps(b.mappings)
    assert dumps(_all_bills(a)) != dumps(_all_bills(c))
    assert [x["id"] for x in a.accounts] != [x["id"] for x in c.accounts]


def test_every_line_item_type_appears() -> None:
    seen = {li["lineItemType"] for b in _all_bills(M3terSandbox()) for li in b["lineItems"]}
    assert seen == set(LINE_ITEM_TYPES)
    assert len(LINE_ITEM_TYPES) == 19


def test_sandbox_and_client_line_item_types_are_m3ters() -> None:
    """The emulator keeps its own list (the sandbox imports nothing of the project): both it and
    the client's are m3ter's, as its SDK has them, in the same order."""
    sdk = typing.get_args(SdkLineItem.model_fields["line_item_type"].annotation)
    assert sdk == gen.LINE_ITEM_TYPES
    assert sdk == tuple(LINE_ITEM_TYPES)


def test_bands_add_up_and_totals_are_line_sums() -> None:
    banded = 0
    for bill in _all_bills(M3terSandbox(seed=3, accounts=30)):
        assert bill["billTotal"] == sum(li["subtotal"] for li in bill["lineItems"])
        for li in bill["lineItems"]:
            assert isinstance(li["subtotal"], Decimal)
            assert li["subtotal"] == li["subtotal"].quantize(Decimal("0.01"))
            bands = li.get("usagePerPricingBand")
            if li["lineItemType"] in gen.BANDED_TYPES:
                assert bands, li["lineItemType"]
            if bands:
                banded += 1
                assert sum(b["bandSubtotal"] for b in bands) == li["subtotal"]
                assert sum(b["bandQuantity"] for b in bands) == li["quantity"]
                assert all(isinstance(b["unitPrice"], Decimal) for b in bands)
            if li["lineItemType"] in gen.CREDIT_TYPES:
                assert li["subtotal"] < 0
    assert banded > 30


def test_some_totals_negative_statuses_and_locks_mixed() -> None:
    bills = _all_bills(M3terSandbox())
    assert any(b["billTotal"] < 0 for b in bills)
    assert any(b["billTotal"] > 0 for b in bills)
    assert {b["status"] for b in bills} == {"PENDING", "APPROVED"}
    assert any(b["locked"] for b in bills)
    assert not any(b["locked"] and b["status"] == "PENDING" for b in bills)
    assert len({b["version"] for b in bills}) > 1


def test_accounts_span_countries_currencies_and_mapping_kinds() -> None:
    sb = M3terSandbox(accounts=20)
    assert {a["address"]["country"] for a in sb.accounts} >= {"GB", "US", "DE", "NZ"}
    assert {a["currency"] for a in sb.accounts} >= {"GBP", "USD", "EUR", "NZD"}
    assert all(a["customFields"] for a in sb.accounts)
    # Product mappings (tests/m3ter/test_accounting_products.py) are Xero ones too.
    xero = [
        m for m in sb.mappings if m["externalSystem"] == "Xero" and m["m3terEntity"] == "Account"
    ]
    assert all(m["externalTable"] == "Contact" for m in xero)
    linked = {m["m3terId"] for m in xero if m.get("integrationConfigId")}
    unlinked = {m["m3terId"] for m in xero if not m.get("integrationConfigId")}
    unmapped = {a["id"] for a in sb.accounts} - linked - unlinked
    assert len(linked) == 12 and len(unlinked) == 4 and len(unmapped) == 4
    assert any(m["externalSystem"] == "Salesforce" for m in sb.mappings)


def test_regenerate_bumps_version_and_changes_amounts_approve_sets_status() -> None:
    sb = M3terSandbox()
    rec = next(r for r in sb.bills if r.status == "PENDING")
    before = sb.bill(rec.id)
    after = sb.regenerate(rec.id)
    assert after["version"] == before["version"] + 1
    assert after["id"] == before["id"]
    assert [li["subtotal"] for li in after["lineItems"]] != [
        li["subtotal"] for li in before["lineItems"]
    ]
    assert sb.approve(rec.id)["status"] == "APPROVED"
    assert sb.bill(rec.id)["version"] == after["version"]


def test_wire_json_numbers_are_exact_and_parse_with_our_models() -> None:
    sb = M3terSandbox()
    bill = sb.bill(sb.bills[3].id)
    text = dumps(bill)
    assert '"subtotal":"' not in text  # numbers, not strings
    plain = json.loads(text)  # standard JSON
    assert isinstance(plain["lineItems"][0]["subtotal"], int | float)
    parsed = Bill.model_validate(loads(text))
    assert parsed.bill_total == bill["billTotal"]
    assert [li.subtotal for li in parsed.line_items or []] == [
        li["subtotal"] for li in bill["lineItems"]
    ]


def test_fifty_thousand_bills_build_fast_and_page_from_anywhere() -> None:
    started = time.monotonic()
    sb = M3terSandbox(seed=5, accounts=1000, bills_per_account=50)
    built = time.monotonic() - started
    assert len(sb.bills) == 50_000
    assert built < 20, f"building 50,000 bill records took {built:.1f}s"
    # A late page costs only its own bills: resume from a token near the end.
    start = decode_token(sb.page(sb.bills, lambda r: True, 49_900, 1)[1] or "")
    page, token = sb.list_bills(start=start, size=200, status="APPROVED")
    assert page and all(b["status"] == "APPROVED" for b in page)
    assert token is None
