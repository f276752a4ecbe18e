"""Kept so ``from tasks.xero.retries import with_retries`` still works: the retry policy, and
where it is applied, is ``tasks.retries``."""

from tasks.retries import OnRetry, retry_delay, with_retries

__all__ = ["OnRetry", "retry_delay", "with_retries"]
