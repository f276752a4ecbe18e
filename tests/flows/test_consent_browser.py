"""A person provisions a credential in headless Chromium: log in, choose one of two
organisations on the sandbox's consent page, allow; the paused run resumes."""

from __future__ import annotations

import shutil

import pytest

from flows.consent_link import wait_for_consent_link
from flows.credentials import provision_xero_credential
from sandbox.xero.state import DEFAULT_ORGS
from store.credentials import CredentialStatus
from tasks.xero.credentials import credentials

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_person_consents_in_a_browser_and_picks_the_second_organisation(
    app_env, in_background, xero_sandbox, browser_page
):
    _, second = DEFAULT_ORGS
    run = in_background(provision_xero_credential, "Browser books")
    link = wait_for_consent_link("Browser books")

    page = browser_page
    page.goto(link.url)
    page.fill("#email", "ops@example.com")
    page.fill("#password", "correct horse")
    page.click("#login")
    page.check(f"input[data-org='{second}']")
    page.click("#allow")
    page.wait_for_selector("#title", timeout=60_000)
    assert page.inner_text("#title") == "Xero connected"

    assert run.join().is_completed()
    view = credentials().get("Browser books")
    assert view.status is CredentialStatus.ACTIVE
    assert (view.tenant_name, view.tenant_id) == (second, xero_sandbox.orgs[second])
