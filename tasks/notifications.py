"""E-mail to an integration's notification users (SMTP from settings; logged when none is set)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from config.errors import TransientError
from config.settings import Settings

log = logging.getLogger(__name__)


def disabled_message(
    sender: str, recipients: list[str], integration_name: str, reason: str, todo: str = ""
) -> EmailMessage:
    """The e-mail that tells an integration's people it was disabled, and why."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"Xero bill integration {integration_name!r} was disabled"
    message.set_content(
        f"The m3ter → Xero bill integration {integration_name!r} has been disabled.\n\n"
        f"Why: {reason}\n\n"
        "No bills are sent to Xero until it is enabled again (flow `enable_integration`).\n\n"
        f"What to do: {todo or 'enable_integration once what disabled it is fixed'}. The next "
        "sync then sends the bills that waited.\n"
    )
    return message


def send_email(settings: Settings, message: EmailMessage) -> bool:
    """Send through the configured SMTP server; returns False when none is configured."""
    if not settings.smtp_host:
        log.warning("no SMTP server configured; e-mail not sent: %s", message["Subject"])
        return False
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientError(f"could not send e-mail via {settings.smtp_host}: {exc}") from exc
    return True


def notify_disabled(
    settings: Settings, recipients: list[str], integration_name: str, reason: str, todo: str = ""
) -> bool:
    """Tell the integration's people it was disabled and why; False when there is no one/SMTP."""
    if not recipients:
        log.warning("integration %r disabled and has no notification users", integration_name)
        return False
    message = disabled_message(settings.smtp_sender, recipients, integration_name, reason, todo)
    return send_email(settings, message)
