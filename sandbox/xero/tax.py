"""Tax on a line of an invoice or credit note, the way Xero computes it. Money is Decimal.

- Per line, then summed: "Xero calculates tax on a per line basis, rounding to two decimal
  places, and then sums the tax totals of each line to calculate the total invoice tax"
  (https://developer.xero.com/documentation/guides/how-to-guides/rounding-in-xero/).
- Rounding: half up to the cent. Xero's rounding guide does not name the mode (its examples
  never land on a half cent); a third-party help page claims banker's rounding
  (https://help.file.ai/xero-rounding-issues) but contradicts itself. The sandbox rounds half
  up, as issue 16 says; the real mode at an exact half cent is unconfirmed.
- ``LineAmountTypes`` (https://developer.xero.com/documentation/api/accounting/types
  #line-amount-types): Exclusive, tax = LineAmount x rate; Inclusive, the line amount already
  holds the tax, tax = LineAmount - LineAmount / (1 + rate); NoTax, no tax.
- A rate is the tax rate's ``EffectiveRate`` in percent (GET /TaxRates: "Effective Tax Rate");
  a compound rate's components are folded into it by ``books.TaxRate.effective_rate`` rather
  than rounded per component: how Xero rounds compound components on a line is not documented.
- A ``TaxAmount`` sent on a line "can be overriden if the calculated <TaxAmount> is not correct"
  (spec, LineItem.TaxAmount); integrators report that invoices take it while bank transactions
  refuse it (https://github.com/XeroAPI/xero-node/issues/768). How far an override may stray
  from the computed tax is not documented: the sandbox takes it as sent, to the cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)


def cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half up to the cent, never a negative zero."""
    rounded = amount.quantize(CENT, ROUND_HALF_UP)
    return rounded if rounded else ZERO


def line_tax(
    line_amount: Decimal,
    rate: Decimal | None,
    line_amount_types: str,
    override: Decimal | None = None,
) -> Decimal:
    """The tax of one line: ``rate`` in percent (None: the line has no tax rate)."""
    if line_amount_types == "NoTax" or rate is None:
        return ZERO
    if override is not None:
        return cents(override)
    if line_amount_types == "Inclusive":
        return cents(line_amount * rate / (HUNDRED + rate))
    return cents(line_amount * rate / HUNDRED)


def totals(
    line_amounts: list[Decimal], taxes: list[Decimal], line_amount_types: str
) -> tuple[Decimal, Decimal, Decimal]:
    """(SubTotal, TotalTax, Total): the taxes are summed as rounded per line; with Inclusive
    amounts the subtotal is the line amounts less their tax ("SubTotal: Total of invoice
    excluding taxes", GET Invoices)."""
    total_tax = cents(sum(taxes, ZERO))
    amounts = cents(sum(line_amounts, ZERO))
    if line_amount_types == "Inclusive":
        return cents(amounts - total_tax), total_tax, amounts
    return amounts, total_tax, cents(amounts + total_tax)
