"""The OAuth redirect endpoint: ``GET /xero/callback`` resumes the run waiting for consent.

It accepts only a known, unexpired, unused ``state`` (spending it), then resumes the paused
``provision_xero_credential`` run with the code (or Xero's error). Anything else gets a clear
HTML page and changes nothing: a link that expired (and when, in UTC), one already used, one
whose credential is already connected, one whose run ended early, one this project never made.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from config.errors import InvalidInput
from config.settings import Settings, get_settings
from store.credential_types import (
    ConsentAlreadyCompleted,
    ConsentAlreadyUsed,
    ConsentExpired,
    ConsentRefused,
    ConsentWithdrawn,
)
from store.factory import credential_store

RESUME_WAIT_SECONDS = 20
OUTCOME_WAIT_SECONDS = 20


def _page(
    title: str, message: str, status: int, link: tuple[str, str] | None = None
) -> HTMLResponse:
    anchor = (
        f"<p><a id='next' href='{html.escape(link[0])}'>{html.escape(link[1])}</a></p>"
        if link
        else ""
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1 id='title'>{html.escape(title)}</h1><p id='message'>{html.escape(message)}</p>"
        f"{anchor}</body></html>"
    )
    return HTMLResponse(body, status_code=status)


AGAIN = "Run provision_xero_credential again for a new Go to Xero link."


def _utc(timestamp: float, now: float) -> str:
    """``14:05 UTC``, with the day when it was not today (UTC)."""
    when = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    day = (
        ""
        if when.date() == dt.datetime.fromtimestamp(now, dt.UTC).date()
        else f" on {when:%Y-%m-%d}"
    )
    return f"{when:%H:%M} UTC{day}"


def _refused(refusal: ConsentRefused, now: float) -> HTMLResponse:
    """The page for a consent link that cannot be used: what happened, that this visit stored
    nothing, and what to do next."""
    if isinstance(refusal, ConsentExpired):
        return _page(
            "Link expired",
            f"This Go to Xero link expired at {_utc(refusal.expires_at, now)}. Nothing was "
            f"stored: the consent you gave Xero was not used. {AGAIN}",
            410,
        )
    if isinstance(refusal, ConsentWithdrawn):
        return _page(
            "Link withdrawn",
            "This Go to Xero link no longer works: its provisioning run ended before the link "
            f"would have expired ({_utc(refusal.expires_at, now)}) and removed the pending "
            f"credential. Nothing was stored. {AGAIN}",
            410,
        )
    if isinstance(refusal, ConsentAlreadyCompleted):
        return _page(
            "Already connected",
            f"This Go to Xero link was already used: credential {refusal.name!r} is connected. "
            "Nothing changed. You may close this window.",
            409,
        )
    if isinstance(refusal, ConsentAlreadyUsed):
        return _page(
            "Link already used",
            "This Go to Xero link was already used: its provisioning run has that consent and "
            "continues in Prefect. Nothing more was stored.",
            409,
        )
    return _page(
        "Request refused",
        "This Xero consent link is not valid: it is not one this project made (mistyped or "
        "altered). Nothing was stored. To connect Xero, run provision_xero_credential and "
        "follow the Go to Xero link it gives.",
        400,
    )


class PrefectUnreachable(RuntimeError):
    """The callback has no Prefect API to resume the run through."""


@contextmanager
def _prefect(api_url: str | None) -> Iterator[None]:
    """Prefect's API for this call: the one given, else the process's. Never an ephemeral
    server: a callback thread that silently started its own would resume nothing."""
    url = api_url or PREFECT_API_URL.value()
    if not url:
        raise PrefectUnreachable("no Prefect API is configured (PREFECT_API_URL)")
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def _resume(flow_run_id: str, run_input: dict[str, str]) -> None:
    """Resume once the run is paused; a very quick callback may beat the pause itself."""
    deadline = time.monotonic() + RESUME_WAIT_SECONDS
    while True:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
        state = run.state
        if state is not None and state.is_final():
            raise FlowPauseTimeout("the run waiting for this consent has already ended")
        if state is not None and state.is_paused() and state.state_details.run_input_keyset:
            try:
                resume_flow_run(UUID(flow_run_id), run_input=run_input)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
        if time.monotonic() > deadline:
            raise TimeoutError("the run waiting for this consent did not pause")
        time.sleep(0.25)


def _outcome(flow_run_id: str) -> tuple[str, str]:
    """What the resumed run did next: ``("completed"|"failed"|"choose"|"running", message)``."""
    deadline = time.monotonic() + OUTCOME_WAIT_SECONDS
    while True:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
        if state is not None:
            if state.is_completed():
                return "completed", state.message or ""
            if state.is_final():
                return "failed", state.message or state.name
            if state.is_paused() and state.state_details.pause_key == "organisation":
                return "choose", state.message or ""
        if time.monotonic() > deadline:
            return "running", ""
        time.sleep(0.25)


def _run_page(flow_run_id: str) -> str:
    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    return f"{ui}/runs/flow-run/{flow_run_id}"


def create_callback_app(
    settings: Settings | None = None, prefect_api_url: str | None = None
) -> Starlette:
    """The ASGI app serving ``/xero/callback`` (and ``/healthz``).

    ``prefect_api_url`` names the Prefect API the waiting runs live on; without it the
    process's ``PREFECT_API_URL`` is used (read in the request's thread).
    """

    def finish(flow_run_id: str, run_input: dict[str, str]) -> tuple[str, str, str]:
        with _prefect(prefect_api_url):
            _resume(flow_run_id, run_input)
            kind, message = _outcome(flow_run_id)
            return kind, message, _run_page(flow_run_id)

    async def xero_callback(request: Request) -> HTMLResponse:
        params = request.query_params
        state, code, error = params.get("state"), params.get("code"), params.get("error")
        if not state:
            return _page("Request refused", "The callback has no state parameter.", 400)
        if not code and not error:
            return _page("Request refused", "The callback has neither a code nor an error.", 400)
        store = credential_store(settings or get_settings())
        try:
            claimed = await run_in_threadpool(store.claim_state, state)
        except ConsentRefused as refusal:
            return _refused(refusal, time.time())
        except InvalidInput as exc:
            return _page("Request refused", f"This Xero consent link is not valid: {exc}", 400)
        if not claimed.flow_run_id:
            return _page("Request refused", "No flow run is waiting for this consent.", 409)
        run_input = {"state": state, "code": code} if code else {"state": state, "error": error}
        try:
            kind, message, run_page = await run_in_threadpool(
                finish, claimed.flow_run_id, run_input
            )
        except PrefectUnreachable as exc:
            return _page("Could not complete", f"The consent callback is misconfigured: {exc}", 503)
        except (FlowPauseTimeout, TimeoutError, RuntimeError) as exc:
            return _page("Could not complete", f"The waiting flow run could not resume: {exc}", 409)
        link = (run_page, "Open the run in Prefect")
        if error:
            return _page("Consent cancelled", f"Xero reported: {error}. {message}", 200, link)
        if kind == "choose":
            return _page(
                "One more step: choose the organisation",
                "You connected several Xero organisations. Open the run in Prefect, press "
                "Resume (top right of the run's page) and pick the organisation this "
                "credential sends bills to.",
                200,
                link,
            )
        if kind == "failed":
            return _page("Could not complete", message, 409, link)
        if kind == "completed":
            return _page(
                "Xero connected",
                "The credential is ready to connect to an integration. You may close this window.",
                200,
                link,
            )
        return _page(
            "Xero connected",
            "Thank you: the flow run continues; follow it in Prefect.",
            200,
            link,
        )

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/xero/callback", xero_callback), Route("/healthz", healthz)])
