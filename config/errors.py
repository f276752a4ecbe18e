"""One exception hierarchy for the whole project, shaped by what a caller can do about it.

- ``TransientError``: try again later (429, 5xx, timeouts, dropped connections).
- ``PermanentError``: retrying the same request will fail the same way (validation, not editable).
- ``AuthError``: a person must act (reconnect the credential); never retried.
- ``InvalidInput``: a person typed something the tool refuses; nothing was stored.
"""

from __future__ import annotations


class BillSyncError(Exception):
    """Base of every error this project raises on purpose."""


class TransientError(BillSyncError):
    """Worth retrying; ``retry_after`` (seconds) when the server said how long to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitError(TransientError):
    """A 429; ``problem`` names the limit hit (e.g. ``minute``, ``day``, ``appminute``)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, problem: str | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.problem = problem


class Interrupted(TransientError):
    """The run stopped short of its work: the process is stopping, a wait passed its deadline,
    or the project database went away. What it did not send is sent by the next run."""


class WaitExpired(Interrupted):
    """A wait (a call slot, a rate grant, a posting task, the Prefect API) passed its deadline;
    the message says what was waited for, how long, and who held it."""


class Stopping(Interrupted):
    """This process is stopping (SIGTERM, Ctrl-C, interpreter exit): no new call starts."""


class StoreUnavailable(Interrupted):
    """The project database did not answer (down, restarting, unreachable)."""


class PermanentError(BillSyncError):
    """Retrying the same request cannot succeed."""


class ValidationFailed(PermanentError):
    """The remote side refused the content; ``messages`` are its own words."""

    def __init__(self, message: str, *, messages: list[str] | None = None) -> None:
        super().__init__(message)
        self.messages = messages or []


class NotEditable(PermanentError):
    """The target exists but may not change (paid, voided, locked period)."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class NotFound(PermanentError):
    """The thing asked for does not exist."""


class AuthError(BillSyncError):
    """Credentials were refused (invalid_grant, 401, 403): a person must reconnect."""


class InvalidInput(BillSyncError):
    """Input a person gave was refused; ``field`` names what to fix. Nothing was stored."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class RunFailed(BillSyncError):
    """An expected end of a flow run: it failed for the reason its state message gives.

    Return ``Failed(message=..., data=RunFailed(message))`` rather than raise: the run page then
    shows that one line, and ``tasks.prefect_engine.quiet_expected_failures`` keeps Prefect's
    engine from logging a traceback for it. ``details`` carries what a caller (a parent flow)
    needs to read back, e.g. a subflow's report.
    """

    def __init__(self, message: str, details: object | None = None) -> None:
        super().__init__(message)
        self.details = details

    def __reduce__(self) -> tuple[type[RunFailed], tuple[str, object | None]]:
        # Exception pickling replays ``args`` only: keep the details a parent reads back.
        return (RunFailed, (str(self), self.details))
