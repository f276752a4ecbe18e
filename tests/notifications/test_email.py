"""Disabled-integration e-mail through a real SMTP server on loopback."""

from __future__ import annotations

import pytest

from config.errors import TransientError
from config.settings import Settings
from sandbox.serve import free_port
from tasks.notifications import notify_disabled


def test_notification_reaches_every_user_with_the_reason(smtp_inbox):
    settings = Settings(smtp_host=smtp_inbox.host, smtp_port=smtp_inbox.port)
    sent = notify_disabled(settings, ["a@example.com", "b@example.com"], "UK", "invalid_grant")
    assert sent
    (message,) = smtp_inbox.messages
    assert message["To"] == "a@example.com, b@example.com"
    assert "UK" in message["Subject"] and "disabled" in message["Subject"]
    assert "invalid_grant" in message.get_payload()


def test_no_users_or_no_server_sends_nothing(smtp_inbox):
    assert not notify_disabled(Settings(smtp_host=None), ["a@example.com"], "UK", "why")
    settings = Settings(smtp_host=smtp_inbox.host, smtp_port=smtp_inbox.port)
    assert not notify_disabled(settings, [], "UK", "why")
    assert smtp_inbox.messages == []


def test_unreachable_server_is_transient():
    settings = Settings(smtp_host="127.0.0.1", smtp_port=free_port())
    with pytest.raises(TransientError):
        notify_disabled(settings, ["a@example.com"], "UK", "why")
