"""E-mail alarms and warnings through Airflow's SMTP connection and the SMTP provider's ``SmtpNotifier``.

The report goes out as preformatted text. ``notify()`` is called directly, without Jinja rendering: report text
comes partly from the directory, and directory data must never be evaluated as a template. A mail that cannot
be sent is logged; it never turns a sync into a failure.
"""

from __future__ import annotations

import html
import logging

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook

from usersync.rules.model import AlarmsSpec
from usersync.run.report import RunReport

log = logging.getLogger(__name__)


def _from_address(alarms: AlarmsSpec) -> str:
    if alarms.from_email:
        return alarms.from_email
    try:
        configured = BaseHook.get_connection(alarms.smtp_conn_id).extra_dejson.get("from_email")
    except Exception:  # noqa: BLE001 - a missing connection is reported when sending
        configured = None
    return configured or "usersync@localhost"


def _send(alarms: AlarmsSpec, kind: str, subject: str, text: str, context) -> bool:
    """One mail through the SMTP connection; a failure is logged, never raised (mail must not fail a sync)."""
    if not alarms.to:
        log.warning("a %s mail is due but alarms.to lists no recipients in the rules file", kind)
        return False
    notifier = SmtpNotifier(
        to=alarms.to,
        cc=alarms.cc or None,
        from_email=_from_address(alarms),
        subject=subject,
        html_content=f"<pre>{html.escape(text)}</pre>",
        smtp_conn_id=alarms.smtp_conn_id,
    )
    try:
        notifier.notify(context)
    except Exception as exc:  # noqa: BLE001 - mail trouble must not fail the sync
        log.error("could not send the %s mail through connection %r: %s: %s",
                  kind, alarms.smtp_conn_id, type(exc).__name__, exc)
        return False
    log.info("sent the %s mail to %s: %s", kind, ", ".join(alarms.to), subject)
    return True


def send_report_mail(report: RunReport, text: str, alarms: AlarmsSpec, context) -> str | None:
    """Send the alarm / warning / success mail the report calls for; returns the kind sent, or None."""
    kind = report.mail_kind(alarms.notify_on_success)
    if kind is None:
        return None
    return kind if _send(alarms, kind, report.subject(), text, context) else None


def send_approval_mail(request: dict[str, str], link: str, alarms: AlarmsSpec, context) -> bool:
    """Tell the admins a blocked run waits for their approval, what it would do, and where to answer."""
    subject = f"[usersync] APPROVAL NEEDED: {request['subject'].removeprefix('usersync: ')}"
    text = (f"{request['body']}\n\nApprove or reject it in Airflow (Required Actions):\n{link}\n\n"
            "Nothing is written until someone answers.\n")
    return _send(alarms, "approval", subject, text, context)
