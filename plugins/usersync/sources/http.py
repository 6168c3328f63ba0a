"""What the HTTP sources (Microsoft Graph, SCIM) share about a server's answer."""

from __future__ import annotations

import httpx


def retry_after(answer: httpx.Response, default: float = 10.0) -> float:
    """Seconds a throttled answer (429 / 503) asks to wait (``Retry-After`` in seconds); ``default`` when absent
    or not a number."""
    try:
        return max(float(answer.headers.get("Retry-After", str(default))), 0.0)
    except ValueError:
        return default
