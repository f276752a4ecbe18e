"""The OAuth redirect endpoint: ``GET /xero/callback`` resumes the run waiting for consent.

It accepts only a known, unexpired, unused ``state`` (spending it), then resumes the paused
``provision_xero_credential`` run with the code (or Xero's error). Anything else gets a clear
HTML page and changes nothing.
"""

from __future__ import annotations

import html
import time
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import resume_flow_run
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from config.errors import InvalidInput
from config.settings import Settings, get_settings
from store.factory import credential_store

RESUME_WAIT_SECONDS = 20


def _page(title: str, message: str, status: int) -> HTMLResponse:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1 id='title'>{html.escape(title)}</h1><p id='message'>{html.escape(message)}</p>"
        "</body></html>"
    )
    return HTMLResponse(body, status_code=status)


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


def create_callback_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app serving ``/xero/callback`` (and ``/healthz``)."""

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
        except InvalidInput as exc:
            return _page("Request refused", f"This Xero consent link is not valid: {exc}", 400)
        if not claimed.flow_run_id:
            return _page("Request refused", "No flow run is waiting for this consent.", 409)
        run_input = {"state": state, "code": code} if code else {"state": state, "error": error}
        try:
            await run_in_threadpool(_resume, claimed.flow_run_id, run_input)
        except (FlowPauseTimeout, TimeoutError, RuntimeError) as exc:
            return _page("Could not complete", f"The waiting flow run could not resume: {exc}", 409)
        if error:
            return _page("Consent cancelled", "Xero reported: " + error, 200)
        return _page(
            "Xero connected",
            "Thank you: the flow run continues. You may close this window.",
            200,
        )

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/xero/callback", xero_callback), Route("/healthz", healthz)]
    )
