"""What the hooks with a client share (as the SMTP provider's hook does): the connection id is stored, the
client is built lazily from ``get_settings()``, and ``test_connection()`` (the UI's Test button) makes one cheap
call and always closes the client again."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from usersync.sources.errors import SourceError


class ClientHook(BaseHook):
    """Subclasses set ``conn_name_attr`` and implement ``get_settings``, ``make_client`` and ``probe``."""

    conn_name_attr: str

    def __init__(self, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        setattr(self, self.conn_name_attr, conn_id)
        self._client = None

    @property
    def conn_id(self) -> str:
        return getattr(self, self.conn_name_attr)

    def get_settings(self):
        raise NotImplementedError

    def make_client(self, settings):
        raise NotImplementedError

    def probe(self, client) -> str:
        """One cheap request proving the connection works; returns what the Test button shows."""
        raise NotImplementedError

    def get_conn(self):
        if self._client is None:
            self._client = self.make_client(self.get_settings())
        return self._client

    def test_connection(self) -> tuple[bool, str]:
        try:
            return True, self.probe(self.get_conn())
        except SourceError as exc:
            return False, str(exc)
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None
