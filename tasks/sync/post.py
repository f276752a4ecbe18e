"""Post planned documents to one Xero tenant: exactly once, in batches, with observable retries.

For each batch the ledger first says STARTED (with the Idempotency-Key), then the call goes out
inside the tenant's shared limits, retried on transient errors (Retry-After honoured, each
attempt logged). A retry of the same batch carries the same key, so Xero replays its first
answer. A bill whose earlier attempt ended unknown is looked up (by the bill id, as its number
or its Reference) before it is posted again; a create that Xero refuses because the number
exists is looked up and, when the document is the bill's own, updated instead.
A bill whose sign changed has its old document (the other kind) deleted or voided first, so
that Xero never holds both an invoice and a credit note for it.

The steps are modules of their own: ``contacts`` (each account's contact, upserted first),
``unknown`` (earlier attempts that ended unknown),
``withdraw`` (sign changes), ``batches`` (posting and recording results), over ``run`` (what
one post shares), ``calls`` (slots and retries), ``kinds`` and ``fates``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from config.errors import AuthError, Interrupted
from config.settings import Settings
from store.ledger import Ledger, Outcome
from tasks.sync import stopping
from tasks.sync.batches import post_all
from tasks.sync.calls import DailyLimitReached, XeroCalls
from tasks.sync.contacts import ensure_contacts
from tasks.sync.fates import PostReport, fate_for, stopped, unsent_fate
from tasks.sync.limits import TenantSlots
from tasks.sync.plan import Send
from tasks.sync.run import PostRun
from tasks.sync.unknown import resolve_unknown
from tasks.sync.withdraw import withdraw
from tasks.xero.invoices import XeroAccountingClient

__all__ = ["DailyLimitReached", "PostReport", "TenantPoster", "fate_for", "unsent_fate"]


class TenantPoster:
    """Sends documents of one integration to one tenant and records every bill's fate.

    A batch's outcomes are written with the next batch's STARTED rows, in one transaction (or at
    the end, or with whatever else is recorded first): one ledger write per call instead of two.
    A process that dies before that write leaves the bills STARTED with their idempotency key,
    as a death between the call and its own write would: the next run looks them up.
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
        organisation: str = "",
    ) -> None:
        self.settings = settings
        self.client = client
        self.ledger = ledger
        self.integration_id = integration_id
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.log = log or logging.getLogger(__name__)
        self.calls = XeroCalls(
            settings, tenant_id, log=self.log, sleep=sleep, slots=slots, organisation=organisation
        )
        self._batches = itertools.count(1)  # batch numbers for log lines, across posts

    def post(self, sends: Sequence[Send]) -> PostReport:
        """Send ``sends`` (any mix of kinds, creates and updates); every bill ends with a fate
        in the ledger and the report. Xero refusing the credential or a spent daily limit stops
        the rest (recorded AUTH_FAILED or RATE_LIMIT_RETRY, and ``report.stop`` says so)."""
        run = PostRun(
            settings=self.settings,
            client=self.client,
            calls=self.calls,
            ledger=self.ledger,
            integration_id=self.integration_id,
            tenant_id=self.tenant_id,
            run_id=self.run_id,
            log=self.log,
            batches=self._batches,
            given={s.bill_id: s for s in sends},
        )
        report = run.report
        try:
            post_all(run, withdraw(run, resolve_unknown(run, ensure_contacts(run, list(sends)))))
        except (AuthError, DailyLimitReached, Interrupted) as exc:
            outcome, reason = stopped(exc)
            report.stop = (outcome, str(exc))
            rest = run.unreported(sends)
            if rest:
                fates = [unsent_fate(s, self.tenant_id, outcome, reason) for s in rest]
                for fate in fates:
                    run.count(fate, update=False)
                run.hold(fates)
                self.log.warning("%d more bill(s) %s: %s", len(rest), outcome.value, reason)
        finally:
            try:
                run.record()
            except Interrupted as exc:  # the database went away: the ledger keeps its rows
                self.log.error("could not record the last outcomes in the ledger: %s", exc)
                report.stop = report.stop or (Outcome.INTERRUPTED, str(exc))
        return report
