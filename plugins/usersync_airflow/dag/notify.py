"""Notices to chat channels through Airflow notifiers, beside the alarm mail (the rules' ``notify:`` section).

Slack goes through the Slack provider's ``SlackWebhookNotifier``, Apprise through ``CheckedAppriseNotifier`` below
(the Apprise provider's hook, but Apprise's answer is read); Microsoft Teams through ``TeamsWorkflowsNotifier``
below, a ``BaseNotifier`` posting an
Adaptive Card to a Teams Workflows webhook (Teams' Office 365 connectors, which the Airflow providers still
target, are retired). Like the mail, ``notify()`` is called directly, never with Jinja rendering: directory data
is never a template. A channel that cannot be reached is logged and named in the task log; it never fails a run.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from airflow.sdk import BaseHook, BaseNotifier

from usersync.rules.notify import NotifyTarget
from usersync.run.notice import Notice

log = logging.getLogger(__name__)
#: a channel that does not answer within this many seconds is given up (the run goes on)
TIMEOUT = 10


def _slack_text(text: str) -> str:
    """Slack's mrkdwn reads ``&``, ``<`` and ``>``: escaped, so names from the directory stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(notice: Notice) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_text("\n".join(notice.lines))[:2900] or " "}},
    ]
    if notice.link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": notice.link_label[:75]}, "url": notice.link}]})
    return blocks


def teams_card(notice: Notice) -> dict[str, Any]:
    """The Workflows webhook's body: a message with one Adaptive Card (plain text blocks, an Open-URL action)."""
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium",
                                   "wrap": True},
                                  *({"type": "TextBlock", "text": line, "wrap": True} for line in notice.lines)]
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    if notice.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": notice.link_label, "url": notice.link}]
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


class NoticeNotifier(BaseNotifier):
    """A notifier of usersync's own: one notice through one connection, nothing templated."""

    template_fields = ()

    def __init__(self, *, conn_id: str, notice: Notice, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.notice = notice


class TeamsWorkflowsNotifier(NoticeNotifier):
    """Posts a notice to a Microsoft Teams Workflows webhook ("Post to a channel when a webhook request is
    received"). The webhook URL — its ``sig`` parameter is a secret — is the connection's password (or its host,
    with the scheme)."""

    def notify(self, context: Any) -> None:
        conn = BaseHook.get_connection(self.conn_id)
        url = conn.password if conn.password and "://" in conn.password else conn.host
        if not url or "://" not in url:
            raise ValueError(f"connection {self.conn_id!r} holds no Workflows webhook URL (put it in the password)")
        response = httpx.post(url, json=teams_card(self.notice), timeout=TIMEOUT)
        if response.status_code >= 300:
            raise RuntimeError(f"the Teams Workflows webhook answered {response.status_code}")


class CheckedAppriseNotifier(NoticeNotifier):
    """Sends a notice through the services of an Apprise connection. The provider's ``AppriseNotifier`` drops
    Apprise's answer, so a service that refused or could not be reached looked sent; here it is an error, as it
    is for Slack and Teams."""

    def notify(self, context: Any) -> None:
        import apprise
        from airflow.providers.apprise.hooks.apprise import AppriseHook

        hook = AppriseHook(apprise_conn_id=self.conn_id)
        services = apprise.Apprise()
        hook.set_config_from_conn(conn=hook.get_connection(self.conn_id), apprise_obj=services)
        body = "\n".join([*self.notice.lines, *([self.notice.link] if self.notice.link else [])])
        if not services.notify(body=body, title=self.notice.title):
            raise RuntimeError(f"Apprise did not deliver the notice to every one of the connection's {len(services)} "
                               "service(s)")


def notifier(target: NotifyTarget, notice: Notice) -> BaseNotifier:
    """The Airflow notifier for one ``notify:`` entry."""
    if target.type == "slack":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(slack_webhook_conn_id=target.conn_id, text=notice.text(),
                                    blocks=slack_blocks(notice), timeout=TIMEOUT)
    if target.type == "apprise":
        return CheckedAppriseNotifier(conn_id=target.conn_id, notice=notice)
    return TeamsWorkflowsNotifier(conn_id=target.conn_id, notice=notice)


def send_notices(targets: list[NotifyTarget], notice: Notice, context: Any) -> dict[str, str]:
    """Tell every channel that wants this notice's event; returns per connection id ``sent`` or why not. A
    failure is logged, never raised."""
    results = {}
    for target in targets:
        if notice.event not in target.on:
            continue
        try:
            notifier(target, notice).notify(context)
        except Exception as exc:  # noqa: BLE001 - a channel that cannot be reached must not fail the sync
            results[target.conn_id] = f"not sent: {type(exc).__name__}: {exc}"
            log.error("could not notify %s through connection %r: %s: %s", target.type, target.conn_id,
                      type(exc).__name__, exc)
            continue
        results[target.conn_id] = "sent"
        log.info("notified %s through connection %r: %s", target.type, target.conn_id, notice.title)
    return results
