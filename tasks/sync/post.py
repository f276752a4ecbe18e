"""Post planned documents to one Xero tenant: exactly once, in batches, with observable retries.

For each batch the ledger first says STARTED (with the Idempotency-Key), then the call goes out
inside the tenant's Prefect limits, retried on transient errors (Retry-After honoured, each
attempt logged). A retry of the same batch carries the same key, so Xero replays its first
answer. A bill whose earlier attempt ended unknown is looked up by number before it is posted
again; a create that Xero refuses because the number exists is looked up and updated instead.
A bill whose sign changed has its old document (the other kind) deleted or voided first, so
that Xero never holds both an invoice and a credit note for it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from config.errors import (
    AuthError,
    Interrupted,
    PermanentError,
    RateLimitError,
    TransientError,
)
from config.settings import Settings
from store.ledger import Fate, Ledger, Outcome
from tasks.retries import with_retries
from tasks.sync import stopping
from tasks.sync.failures import BillFailure
from tasks.sync.limits import TenantSlots
from tasks.sync.plan import ID_FIELD, Send, idempotency_key
from tasks.xero.invoices import InvoiceResult, XeroAccountingClient

DUPLICATE_MARKER = "must be unique"
WITHDRAWN = ("DELETED", "VOIDED")  # DRAFT and SUBMITTED documents delete; AUTHORISED ones void


class DailyLimitReached(TransientError):
    """Xero's daily limit for the tenant is spent: the rest waits for the next run."""


@dataclass
class PostReport:
    """What happened to the documents one poster handled."""

    created: int = 0
    updated: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[BillFailure] = field(default_factory=list)
    calls: int = 0
    #: Set when the poster stopped early (Xero refused the credential, or the day's calls are
    #: spent): (outcome, Xero's words). Every bill it was given has its fate all the same.
    stop: tuple[Outcome, str] | None = None

    def add(self, fate: Fate, *, update: bool, send: Send | None = None) -> None:
        self.outcomes[fate.outcome.value] += 1
        if fate.outcome is Outcome.COMPLETE:
            if update:
                self.updated += 1
            else:
                self.created += 1
        elif send is not None:
            self.failures.append(send.failure(fate.outcome, fate.reason or ""))
        else:
            self.failures.append(
                BillFailure(
                    fate.bill_id, fate.outcome.value, fate.reason or "", account_id=fate.account_id
                )
            )

    def merge(self, other: PostReport) -> None:
        self.created += other.created
        self.updated += other.updated
        self.outcomes.update(other.outcomes)
        self.failures.extend(other.failures)
        self.calls += other.calls
        self.stop = self.stop or other.stop


def _refused_outcome(result: InvoiceResult) -> Outcome:
    reason = (result.not_editable_reason or "").lower()
    if "lock date" in reason:
        return Outcome.ACCOUNTING_PERIOD_CLOSED
    if reason:
        return Outcome.INVOICE_ALREADY_PAID
    return Outcome.ERROR


class TenantPoster:
    """Sends documents of one integration to one tenant and records every bill's fate.

    A batch's outcomes are written with the next batch's STARTED rows, in one transaction (or at
    the end, or with whatever else is recorded first): one ledger write per call instead of two.
    A process that dies before that write leaves the bills STARTED with their idempotency key,
    as a death between the call and its own write would: the next run looks them up by number.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        client: XeroAccountingClient,
        ledger: Ledger,
        integration_id: str,
        tenant_id: str,
        run_id: str | None = None,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        sleep: Callable[[float], None] = stopping.pause,
        slots: TenantSlots | None = None,
    ) -> None:
        if slots is None and settings.xero_shared_limits:
            raise ValueError(
                "a poster under shared limits needs its task's TenantSlots (one slot for all its "
                "calls); without them each call would take a slot of its own"
            )
        self.settings = settings
        self.slots = slots
        self.client = client
        self.ledger = ledger
        self.integration_id = integration_id
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.log = log or logging.getLogger(__name__)
        self.sleep = sleep
        self.batch_number = 0
        self._unwritten: list[Fate] = []  # outcomes of the last call, written with the next rows
        self._given: dict[str, Send] = {}  # the bills of this ``post``, by id
        self._reported: set[str] = set()  # those whose fate is in the report

    # -- public ------------------------------------------------------------------------------
    def post(self, sends: Sequence[Send]) -> PostReport:
        """Send ``sends`` (any mix of kinds, creates and updates); every bill ends with a fate
        in the ledger and the report. Xero refusing the credential or a spent daily limit stops
        the rest (recorded AUTH_FAILED or RATE_LIMIT_RETRY, and ``report.stop`` says so)."""
        report = PostReport()
        self._given = {s.bill_id: s for s in sends}
        self._reported = set()
        try:
            ready = self._withdraw(self._resolve_unknown(list(sends), report), report)
            for kind in ("invoice", "credit_note"):
                for update in (False, True):
                    group = [s for s in ready if s.kind == kind and bool(s.xero_id) == update]
                    size = self.settings.sync_batch_size
                    for start in range(0, len(group), size):
                        self._post_batch(group[start : start + size], update, report)
        except (AuthError, DailyLimitReached, Interrupted) as exc:
            outcome, reason = _stopped(exc)
            report.stop = (outcome, str(exc))
            rest = [s for s in sends if s.bill_id not in self._reported]
            if rest:
                fates = [unsent_fate(s, self.tenant_id, outcome, reason) for s in rest]
                for fate in fates:
                    self._report(report, fate, update=False)
                self._unwritten.extend(fates)
                self.log.warning("%d more bill(s) %s: %s", len(rest), outcome.value, reason)
        finally:
            try:
                self._record([])
            except Interrupted as exc:  # the database went away: the ledger keeps its rows
                self.log.error("could not record the last outcomes in the ledger: %s", exc)
                report.stop = report.stop or (Outcome.INTERRUPTED, str(exc))
        return report

    # -- steps -------------------------------------------------------------------------------
    def _resolve_unknown(self, sends: list[Send], report: PostReport) -> list[Send]:
        """Find documents whose earlier attempt ended unknown; record or update them."""
        unknown = [s for s in sends if s.lookup_first and not s.xero_id]
        if not unknown:
            return sends
        found = self._lookup(unknown, report)
        done: list[Fate] = []
        resolved: dict[str, Send] = {}
        for send in unknown:
            doc = found.get(send.number)
            if doc is None:
                continue
            xero_id = self._doc_id(send, doc)
            if send.started_version == send.bill_version:
                fate = self._fate(send, Outcome.COMPLETE, xero_id=xero_id)
                done.append(fate)
                self._report(report, fate, update=False)
            else:
                resolved[send.bill_id] = replace(send, xero_id=xero_id, lookup_first=False)
        if done:
            self.log.info(
                "found %d document(s) of earlier unknown attempts in Xero: recorded, not re-sent",
                len(done),
            )
            self._record(done)
        finished = {f.bill_id for f in done}
        return [resolved.get(s.bill_id, s) for s in sends if s.bill_id not in finished]

    def _withdraw(self, sends: list[Send], report: PostReport) -> list[Send]:
        """Delete or void the old documents of bills whose sign changed; those bills go on as
        creates of their new kind. A bill whose old document Xero keeps (paid, in a locked
        period) is not sent: its fate says why, and the ledger still points at that document."""
        changed = [s for s in sends if s.withdraw_id]
        if not changed:
            return sends
        size = self.settings.sync_batch_size
        stopped: dict[str, Fate] = {}
        for new_kind in ("invoice", "credit_note"):
            group = [s for s in changed if s.kind == new_kind]
            for start in range(0, len(group), size):
                stopped.update(self._withdraw_batch(group[start : start + size], report))
        if stopped:
            self._report_and_record(list(stopped.values()), report, update=True)
        gone = len(changed) - len(stopped)
        if gone:
            self.log.info("withdrew %d document(s) of bills whose sign changed", gone)
        return [
            replace(s, withdraw_id=None) if s.withdraw_id else s
            for s in sends
            if s.bill_id not in stopped
        ]

    def _withdraw_batch(self, batch: list[Send], report: PostReport) -> dict[str, Fate]:
        """Withdraw the old documents of ``batch`` (all of one new kind, so one old kind):
        DELETED first, then VOIDED for those Xero refused; a document still refused is looked
        up, as an earlier run may have withdrawn it already. Returns the bills that stop here."""
        old_kind = "credit_note" if batch[0].kind == "invoice" else "invoice"
        invoices = old_kind == "invoice"
        id_field = ID_FIELD[old_kind]
        poster = self.client.post_invoices if invoices else self.client.post_credit_notes
        getter = self.client.get_invoice if invoices else self.client.get_credit_note
        left, refusals = batch, {}
        withdrawn: set[str] = set()  # bills whose old document is gone: they go on
        try:
            for status in WITHDRAWN:
                if not left:
                    break
                key = idempotency_key(self.integration_id, left, f"{status.lower()}-{old_kind}")
                documents = [{id_field: s.withdraw_id, "Status": status} for s in left]
                results = self._call(
                    lambda d=documents, k=key: poster(d, idempotency_key=k, update=True),
                    f"{status.lower()} {len(left)} {old_kind}s of bills whose sign changed",
                    report,
                )
                by_id = {r.invoice_id: r for r in results if r.invoice_id}
                refused = []
                for index, send in enumerate(left):
                    result = by_id.get(send.withdraw_id) or (
                        results[index] if index < len(results) else None
                    )
                    if result is None or not result.ok:
                        refused.append(send)
                        refusals[send.bill_id] = result
                    else:
                        withdrawn.add(send.bill_id)
                left = refused
            stopped: dict[str, Fate] = {}
            for send in left:
                label = f"look up {old_kind} {send.withdraw_id}"
                doc = self._call(lambda i=send.withdraw_id: getter(i), label, report)
                if doc.get("Status") in WITHDRAWN:
                    withdrawn.add(send.bill_id)
                    continue
                result = refusals.get(send.bill_id)
                why = "; ".join(result.errors) if result else "Xero's answer omitted it"
                outcome = _refused_outcome(result) if result else Outcome.ERROR
                stopped[send.bill_id] = self._kept(send, old_kind, outcome, why, doc.get("Status"))
            return stopped
        except (AuthError, DailyLimitReached) as exc:
            outcome = (
                Outcome.AUTH_FAILED if isinstance(exc, AuthError) else Outcome.RATE_LIMIT_RETRY
            )
            fates = [self._kept(s, old_kind, outcome, str(exc), None) for s in batch]
            self._report_and_record(fates, report, update=True)
            raise
        except (TransientError, PermanentError) as exc:
            outcome = Outcome.RATE_LIMIT_RETRY if isinstance(exc, RateLimitError) else Outcome.ERROR
            return {
                s.bill_id: self._kept(s, old_kind, outcome, str(exc), None)
                for s in batch
                if s.bill_id not in withdrawn
            }

    def _kept(
        self, send: Send, old_kind: str, outcome: Outcome, why: str, status: str | None
    ) -> Fate:
        """The fate of a bill whose old document could not be withdrawn: recorded against that
        document (its kind and id), so the next run tries to withdraw it again."""
        state = f" ({status})" if status else ""
        reason = f"its {old_kind} {send.withdraw_id}{state} could not be withdrawn: {why}"
        return replace(
            self._fate(send, outcome, reason=reason),
            document_type=old_kind,
            xero_id=send.withdraw_id,
        )

    def _lookup(self, sends: Sequence[Send], report: PostReport) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for kind in ("invoice", "credit_note"):
            numbers = [s.number for s in sends if s.kind == kind]
            if not numbers:
                continue
            finder = (
                self.client.find_invoices_by_number
                if kind == "invoice"
                else self.client.find_credit_notes_by_number
            )
            found.update(self._call(lambda f=finder, n=numbers: f(n), f"look up {kind}s", report))
        return found

    def _post_batch(self, batch: list[Send], update: bool, report: PostReport) -> None:
        if not batch:
            return
        self.batch_number += 1
        kind = batch[0].kind
        operation = f"{'update' if update else 'create'}-{kind}"
        key = idempotency_key(self.integration_id, batch, operation)
        verb = "update" if update else "create"
        label = f"batch {self.batch_number} ({len(batch)} {kind}s to {verb})"
        self._record(
            [self._fate(s, Outcome.STARTED, idempotency_key=key, attempt=True) for s in batch]
        )
        documents = [self._document(s) for s in batch]
        poster = self.client.post_invoices if kind == "invoice" else self.client.post_credit_notes
        try:
            results = self._call(
                lambda: poster(documents, idempotency_key=key, update=update), label, report
            )
        except AuthError as exc:
            self._record_all(batch, Outcome.AUTH_FAILED, str(exc), report, update)
            raise
        except DailyLimitReached as exc:
            self._record_all(batch, Outcome.RATE_LIMIT_RETRY, str(exc), report, update)
            raise
        except Interrupted:
            raise  # post() records the batch and the rest INTERRUPTED (a lookup comes first)
        except RateLimitError as exc:
            self._record_all(batch, Outcome.RATE_LIMIT_RETRY, str(exc), report, update)
            return
        except TransientError as exc:
            reason = f"outcome unknown after {self.settings.sync_max_attempts} attempts: {exc}"
            self._record_all(batch, Outcome.ERROR, reason, report, update)
            return
        except PermanentError as exc:
            self._record_all(batch, Outcome.ERROR, str(exc), report, update)
            return
        self._record_results(batch, results, update, report, label)

    def _record_results(
        self,
        batch: list[Send],
        results: list[InvoiceResult],
        update: bool,
        report: PostReport,
        label: str,
    ) -> None:
        by_number = {r.invoice_number: r for r in results if r.invoice_number}
        fates: list[Fate] = []
        duplicates: list[Send] = []
        for index, send in enumerate(batch):
            result = by_number.get(send.number) or (
                results[index] if index < len(results) else None
            )
            if result is None:
                fate = self._fate(send, Outcome.ERROR, reason="Xero's answer omitted this bill")
            elif result.ok:
                fate = self._fate(send, Outcome.COMPLETE, xero_id=result.invoice_id)
            elif not update and any(DUPLICATE_MARKER in m for m in result.errors):
                duplicates.append(send)
                continue
            else:
                fate = self._fate(send, _refused_outcome(result), reason="; ".join(result.errors))
            fates.append(fate)
            self._report(report, fate, update=update)
        self._unwritten.extend(fates)
        complete = sum(1 for f in fates if f.outcome is Outcome.COMPLETE)
        self.log.info(
            "%s: %d complete, %d refused%s",
            label,
            complete,
            len(fates) - complete,
            f", {len(duplicates)} already in Xero" if duplicates else "",
        )
        if duplicates:
            found = self._lookup(duplicates, report)
            retry = [
                replace(s, xero_id=self._doc_id(s, found[s.number]))
                for s in duplicates
                if s.number in found
            ]
            missing = [s for s in duplicates if s.number not in found]
            if missing:
                self._record_all(
                    missing,
                    Outcome.ERROR,
                    "Xero says the number exists but it cannot be found",
                    report,
                    update,
                )
            size = self.settings.sync_batch_size
            for start in range(0, len(retry), size):
                self._post_batch(retry[start : start + size], True, report)

    # -- helpers -----------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], label: str, report: PostReport) -> Any:
        def attempt() -> Any:
            with self._slot():
                report.calls += 1  # a call that reaches Xero (a wait that expired is none)
                try:
                    return fn()
                except RateLimitError as exc:
                    if (exc.problem or "").lower().startswith("day"):
                        raise DailyLimitReached(
                            f"Xero's daily limit for tenant {self.tenant_id} is spent",
                            retry_after=exc.retry_after,
                        ) from exc
                    raise

        def on_retry(number: int, error: TransientError, delay: float) -> None:
            self.log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.2f s",
                label,
                number,
                self.settings.sync_max_attempts,
                error,
                delay,
            )

        return with_retries(
            attempt,
            max_attempts=self.settings.sync_max_attempts,
            base_delay=self.settings.sync_retry_base_seconds,
            max_delay=self.settings.sync_retry_max_seconds,
            give_up=(DailyLimitReached, Interrupted),  # the day is spent; waited, or stopping
            sleep=self.sleep,
            on_retry=on_retry,
        )

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """Room for one call: the task's slot, or (shared limits off) this process's."""
        if self.slots is not None:
            with self.slots.call():
                yield
            return
        with TenantSlots(self.settings, self.tenant_id) as slots, slots.call():
            yield

    def _record_all(
        self,
        sends: Sequence[Send],
        outcome: Outcome,
        reason: str,
        report: PostReport,
        update: bool,
    ) -> None:
        fates = [self._fate(s, outcome, reason=reason) for s in sends]
        self._report_and_record(fates, report, update)
        self.log.error("%d bill(s) %s: %s", len(fates), outcome.value, reason)

    def _report_and_record(self, fates: list[Fate], report: PostReport, update: bool) -> None:
        for fate in fates:
            self._report(report, fate, update=update)
        self._record(fates)

    def _report(self, report: PostReport, fate: Fate, *, update: bool) -> None:
        self._reported.add(fate.bill_id)
        report.add(fate, update=update, send=self._given.get(fate.bill_id))

    def _record(self, fates: list[Fate]) -> None:
        """Write ``fates`` and the outcomes not yet written, in one transaction."""
        rows, self._unwritten = [*self._unwritten, *fates], []
        self.ledger.record(self.integration_id, rows, sync_run_id=self.run_id)

    def _fate(self, send: Send, outcome: Outcome, **extra: Any) -> Fate:
        return fate_for(send, self.tenant_id, outcome, **extra)

    @staticmethod
    def _document(send: Send) -> dict[str, Any]:
        if not send.xero_id:
            return send.document
        return {**send.document, ID_FIELD[send.kind]: send.xero_id}

    @staticmethod
    def _doc_id(send: Send, doc: dict[str, Any]) -> str | None:
        return doc.get(ID_FIELD[send.kind])


def fate_for(send: Send, tenant_id: str, outcome: Outcome, **extra: Any) -> Fate:
    """The ledger's record of ``send`` ending in ``outcome``."""
    return Fate(
        bill_id=send.bill_id,
        bill_version=send.bill_version,
        outcome=outcome,
        account_id=send.account_id,
        document_type=send.kind,
        invoice_number=send.number,
        xero_id=extra.pop("xero_id", None) or send.xero_id,
        tenant_id=tenant_id,
        **extra,
    )


def _stopped(exc: Exception) -> tuple[Outcome, str]:
    """The outcome and ledger reason of bills a poster did not send because of ``exc``."""
    if isinstance(exc, AuthError):
        return Outcome.AUTH_FAILED, f"not sent: {exc}"
    if isinstance(exc, Interrupted):
        return Outcome.INTERRUPTED, f"not sent, the run was interrupted: {exc}"
    return Outcome.RATE_LIMIT_RETRY, f"deferred to the next run: {exc}"


def unsent_fate(send: Send, tenant_id: str, outcome: Outcome, reason: str) -> Fate:
    """The ledger's record of ``send`` not attempted (deferred, or its credential refused).
    A bill whose sign changed keeps pointing at its old document, which is still there."""
    fate = fate_for(send, tenant_id, outcome, reason=reason)
    if not send.withdraw_id:
        return fate
    old_kind = "credit_note" if send.kind == "invoice" else "invoice"
    return replace(fate, document_type=old_kind, xero_id=send.withdraw_id)
