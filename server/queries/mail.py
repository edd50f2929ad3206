"""Reminders of escalated physician queries by mail: a link to the query, nothing else.

A mail leaves the building unencrypted and may be read by anyone on its way, so it carries
no patient data at all: no name, no MRN, no question, no quote, no diagnosis, not even the
provider's name or the facility; only that a query is waiting and a link to it
(`{CHARTDESK_PUBLIC_URL}/queries/{id}`), behind the sign-in. It goes to the provider (if
their account has an address) and to `CHARTDESK_QUERY_ESCALATION_EMAILS` (supervisors).
Off unless `CHARTDESK_SMTP_HOST` is set.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from sqlmodel import Session, col, select

from server.config import get_settings
from server.models import PhysicianQuery, ProviderAccount

log = logging.getLogger("chartdesk.queries.mail")

SUBJECT = "Chartdesk: a documentation query is waiting"


@dataclass(frozen=True)
class Reminder:
    """One mail to send: to whom, and which query it links to."""

    to: str
    query_id: int
    to_provider: bool


def reminders(session: Session, *, query_ids: list[int]) -> list[Reminder]:
    """The mails for these (just escalated) queries: their providers, and the supervisors."""
    if not query_ids:
        return []
    rows = session.exec(
        select(PhysicianQuery.id, ProviderAccount.email)
        .outerjoin(ProviderAccount, col(ProviderAccount.npi) == col(PhysicianQuery.provider_npi))
        .where(col(PhysicianQuery.id).in_(query_ids))
        .order_by(col(PhysicianQuery.id))
    ).all()
    out: list[Reminder] = []
    for query_id, email in rows:
        if query_id is None:
            continue
        if email:
            out.append(Reminder(to=email, query_id=query_id, to_provider=True))
        out += [
            Reminder(to=a, query_id=query_id, to_provider=False)
            for a in get_settings().query_escalation_emails
        ]
    return out


def message(reminder: Reminder) -> EmailMessage:
    """The mail itself: a fixed text and the link (no patient data can reach it)."""
    settings = get_settings()
    link = f"{settings.public_url.rstrip('/')}/queries/{reminder.query_id}"
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = reminder.to
    msg["Subject"] = SUBJECT
    days = settings.query_escalation_business_days
    if reminder.to_provider:
        text = (
            f"A documentation query addressed to you has been open for more than {days} "
            f"business days. Please sign in to read and answer it:\n\n{link}\n"
        )
    else:
        text = (
            f"A physician query has been open for more than {days} business days and was "
            f"escalated to you:\n\n{link}\n"
        )
    msg.set_content(text + "\nThis message contains no patient information.\n")
    return msg


def send(items: list[Reminder]) -> int:
    """Send the reminders over SMTP (no-op without CHARTDESK_SMTP_HOST); how many went.

    A failure is logged by its exception type only and stops the round: the queries stay
    escalated, and nobody is mailed twice for the same escalation.
    """
    settings = get_settings()
    if not items or not settings.smtp_host:
        return 0
    sent = 0
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            for item in items:
                smtp.send_message(message(item))
                sent += 1
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("query reminders stopped after %d: %s", sent, type(exc).__name__)
    return sent
