"""One TLS context for every HTTP client the project opens.

``httpx.Client()`` loads the CA bundle into a fresh ``SSLContext`` each time: ~60 ms of CPU on
this kind of machine, paid by every posting task, bill reader and token call. A context is
safe to share between threads and clients, so the project builds it once.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def ssl_context() -> ssl.SSLContext:
    """httpx's default verification (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), once."""
    return httpx.create_ssl_context()


def prefect_ssl_context() -> ssl.SSLContext:
    """The context Prefect's client would build from its settings (insecure skip, or its CA
    file, or certifi), built once per distinct setting: for clients opened per task."""
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    return _prefect_context(
        bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value()
    )


@cache
def _prefect_context(insecure: bool, cert_file: str | None) -> ssl.SSLContext:
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    import certifi

    return ssl.create_default_context(cafile=cert_file or certifi.where())
