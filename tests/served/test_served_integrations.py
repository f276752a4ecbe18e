"""Integrations as a person configures them with ``make serve``: the create_integration form's
JSON, a refusal that fails the run at once with one line naming the field, and a second
integration on the same Xero organisation and accounts refused, naming the first."""

from __future__ import annotations

from deployments.connect import sandbox_credential
from sandbox.xero.state import DEFAULT_ORGS
from tasks.m3ter.models import LINE_ITEM_TYPES

UK, _ = DEFAULT_ORGS


def test_bad_options_fail_at_once_with_one_line_and_store_nothing(as_served):
    from flows.integrations import integrations

    served = as_served
    before = [v.name for v in integrations().list()]
    run_id = served.run(
        "create_integration",
        config={"name": "Bad filter", "account_filter": "address.country =="},
    )
    run = served.finished(run_id, timeout=60)
    assert run["state_type"] == "FAILED"
    message = run["state"]["message"]
    assert message.startswith("account_filter") and "\n" not in message, message
    assert run["total_run_time"] < 2
    crashes = [line for line in served.logs(run_id) if "Traceback" in line]
    assert not crashes, crashes
    assert [v.name for v in integrations().list()] == before


def test_a_second_integration_on_the_same_organisation_and_accounts_is_refused(
    as_served, xero_server, xero_sandbox
):
    from flows.integrations import integrations

    served = as_served
    first_credential, _ = sandbox_credential(xero_server.url, "UK books one", UK)
    second_credential, _ = sandbox_credential(xero_server.url, "UK books two", UK)
    form = {  # as the form sends it: every option, dropdown values as strings
        "name": "UK main",
        "account_ids": ["acc-1", "acc-2"],
        "excluded_line_item_types": [LINE_ITEM_TYPES[0]],
        "split_usage_line_items": "ITEM_PER_PRODUCT",
        "sort_line_items_by": "SUBTOTAL",
        "invoice_status": "DRAFT",
    }
    first = served.finished(
        served.run("create_integration", config=form, credential="UK books one")
    )
    assert first["state_type"] == "COMPLETED", first["state"]["message"]
    assert integrations().get("UK main").credential_id == first_credential

    overlap = {**form, "name": "UK other", "account_ids": ["acc-2", "acc-3"]}
    run = served.finished(
        served.run("create_integration", config=overlap, credential="UK books two")
    )
    assert run["state_type"] == "FAILED"
    message = run["state"]["message"]
    assert "UK main" in message and "acc-2" in message and "acc-3" not in message, message
    assert "UK other" not in [v.name for v in integrations().list()]
    assert second_credential  # the second credential stays, unused
