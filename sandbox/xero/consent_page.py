"""The sandbox's consent pages: "Log in to Xero", then the organisations and "Allow access".

Stable element ids for browser tests: ``#email``, ``#password``, ``#login`` on the first page;
one checkbox per organisation (``id="org-<n>"``, ``data-org="<name>"``), ``#allow`` and
``#cancel`` on the second. ``#error`` holds the message of an error page.
"""

from __future__ import annotations

import html

STYLE = (
    "body{font-family:sans-serif;max-width:28rem;margin:3rem auto}"
    "button{margin:.3rem .3rem 0 0;padding:.5rem 1rem}label{display:block;margin:.4rem 0}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def login_page(query: str) -> str:
    return _page(
        "Log in to Xero",
        "<form method='post' action='/identity/connect/authorize/login'>"
        f"<input type='hidden' name='q' value='{html.escape(query, quote=True)}'>"
        "<label>Email <input id='email' name='email' type='email' required></label>"
        "<label>Password <input id='password' name='password' type='password' required></label>"
        "<button id='login' type='submit'>Log in</button></form>",
    )


def consent_page(query: str, app_name: str, orgs: list[str], scope: str) -> str:
    boxes = "".join(
        f"<label><input type='checkbox' name='org' id='org-{i}' "
        f"data-org='{html.escape(name, quote=True)}' value='{html.escape(name, quote=True)}'>"
        f" {html.escape(name)}</label>"
        for i, name in enumerate(orgs)
    )
    return _page(
        "Allow access",
        f"<p><b>{html.escape(app_name)}</b> wants access to: {html.escape(scope)}</p>"
        "<form method='post' action='/identity/connect/authorize/consent'>"
        f"<input type='hidden' name='q' value='{html.escape(query, quote=True)}'>"
        f"<fieldset><legend>Organisations</legend>{boxes}</fieldset>"
        "<button id='allow' name='action' value='allow' type='submit'>Allow access</button>"
        "<button id='cancel' name='action' value='cancel' type='submit'>Cancel</button></form>",
    )


def error_page(message: str) -> str:
    return _page("Xero sandbox: request refused", f"<p id='error'>{html.escape(message)}</p>")
