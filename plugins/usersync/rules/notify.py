"""The ``notify:`` section: chat channels and other services told what the alarm mail says, beside the mail.

Each entry names an Airflow connection (the webhook address and any token stay there) and what it is told:

    notify:
      - {type: slack, conn_id: ops_slack}                       # alarms and approvals (the default)
      - {type: teams, conn_id: ops_teams, on: [alarm, approval, warning]}
      - {type: apprise, conn_id: ops_apprise, on: [alarm]}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from usersync.core.models import StrictModel

#: what a run can tell: a failed or blocked run, one with warnings, a run waiting for approval, a clean run
EVENTS = ("alarm", "warning", "approval", "success")
Event = Literal["alarm", "warning", "approval", "success"]


class NotifyTarget(StrictModel):
    """One channel: ``slack`` (an incoming webhook, Airflow connection type *Slack Incoming Webhook*), ``teams``
    (a Microsoft Teams Workflows webhook — Teams' retired connectors are not supported; the URL in the
    connection's password), ``apprise`` (any service Apprise reaches, connection type *Apprise*)."""

    type: Literal["slack", "teams", "apprise"]
    conn_id: str = Field(min_length=1, max_length=250)
    on: list[Event] = Field(default_factory=lambda: list[Event](["alarm", "approval"]), min_length=1)
