"""Chat webhooks on loopback, for the ``notify:`` tests: what Slack's incoming webhooks and a Microsoft Teams
Workflows webhook accept and answer, written from their documentation.

- Slack (api.slack.com, "Sending messages using incoming webhooks"): a JSON POST with ``text`` (and optionally
  ``blocks``); answers ``200 ok``; a body without text or blocks is ``400 invalid_payload``, an unknown path
  ``404 no_service``.
- Teams Workflows ("Post to a channel when a webhook request is received"): a JSON POST of a message whose
  ``attachments`` hold an Adaptive Card (``contentType application/vnd.microsoft.card.adaptive``, content of
  type ``AdaptiveCard``); answers ``202 Accepted``; anything else is ``400``.
- Apprise's ``json://`` service posts ``{"version", "title", "message", "type"}``; answered ``200``.

Not reproduced: rate limits (Slack's 1 message per second, 429 with Retry-After), Slack's block-kit validation
beyond the presence of text or blocks, the Workflow's own flow (who sees the card), authentication of the
``sig`` parameter (any signature is taken).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLACK_PATH = "/services/T000/B000/XXXX"
TEAMS_PATH = "/workflows/abc/triggers/manual/paths/invoke"
APPRISE_PATH = "/apprise"


class Webhooks:
    """One loopback HTTP server with the three endpoints; ``received[kind]`` lists the JSON bodies accepted."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict]] = {"slack": [], "teams": [], "apprise": []}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802 - the http.server interface
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self._answer(400, "invalid_payload")
                path = self.path.split("?", 1)[0]
                if path == SLACK_PATH:
                    if not (body.get("text") or body.get("blocks")):
                        return self._answer(400, "invalid_payload")
                    owner.received["slack"].append(body)
                    return self._answer(200, "ok")
                if path == TEAMS_PATH:
                    attachments = body.get("attachments") or [{}]
                    card = attachments[0].get("content") or {}
                    if body.get("type") != "message" or \
                            attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive" or \
                            card.get("type") != "AdaptiveCard":
                        return self._answer(400, "not an Adaptive Card message")
                    owner.received["teams"].append(body)
                    return self._answer(202, "")
                if path == APPRISE_PATH:
                    owner.received["apprise"].append(body)
                    return self._answer(200, "")
                return self._answer(404, "no_service")

            def _answer(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Webhooks:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def connections(self) -> dict[str, dict]:
        """Airflow connections for the three endpoints (the webhook URLs in the password, as for the real ones)."""
        return {
            "ops_slack": {"conn_type": "slackwebhook", "password": self.url + SLACK_PATH},
            "ops_teams": {"conn_type": "http", "password": self.url + TEAMS_PATH + "?api-version=1&sig=secret"},
            "ops_apprise": {"conn_type": "apprise",
                            "extra": {"config": [{"path": f"json://127.0.0.1:{self.port}{APPRISE_PATH}"}]}},
        }
