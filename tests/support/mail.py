"""What the SMTP test server keeps, and the Airflow connection that reaches it."""

from __future__ import annotations


class Inbox:
    """The messages a real SMTP server (aiosmtpd) received, parsed."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def smtp_connection(port: int) -> dict:
    return {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "mailer", "password": "Smtp-Secret-77",
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "usersync@example.test",
                      "retry_limit": 1, "timeout": 5}}
