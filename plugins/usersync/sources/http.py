"""What the HTTP sources (Microsoft Graph, SCIM) share: secure URLs only, and what a server's answer says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from usersync.sources.errors import SourceError, SourceQueryError

#: the connection extra that lets a test lab use ``http://`` (tokens and secrets then go in clear)
INSECURE_HTTP = "insecure_http"


def secure_url(url: str, conn_id: str, extra: Mapping[str, Any], what: str) -> str:
    """``url`` when it is ``https://`` (or ``http://`` with the connection's ``insecure_http`` switch); else an
    error naming the connection: a bearer token or client secret would be sent in clear."""
    if url.lower().startswith("http://") and extra.get(INSECURE_HTTP) is not True:
        raise SourceError(f"connection {conn_id!r}: {what} {url} is plain http://, so its token would be sent in "
                          f"clear; use https:// (only a test lab may set the extra {INSECURE_HTTP}: true)")
    return url


def retry_after(answer: httpx.Response, default: float = 10.0) -> float:
    """Seconds a throttled answer (429 / 503) asks to wait (``Retry-After`` in seconds); ``default`` when absent
    or not a number."""
    try:
        return max(float(answer.headers.get("Retry-After", str(default))), 0.0)
    except ValueError:
        return default


#: the largest answer body read (after decompression), unless a connection's ``max_response_mb`` says otherwise
MAX_RESPONSE_MB = 64.0


def max_response_bytes(extra: Mapping[str, Any]) -> int:
    """The connection's ``max_response_mb`` (default ``MAX_RESPONSE_MB``) in bytes."""
    return int(float(extra.get("max_response_mb", MAX_RESPONSE_MB)) * 2**20)


def read_capped(answer: httpx.Response, limit: int, url: str) -> httpx.Response:
    """Read a streamed answer's body, refusing one larger than ``limit`` bytes once decompressed (a server, or a
    box in between, that sends without end or a compressed bomb); the answer is then used as a read one."""
    chunks, size = [], 0
    for chunk in answer.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise SourceQueryError(f"the answer of {url} is larger than {limit / 2**20:g} MiB (max_response_mb); "
                                   "refusing to read more — nothing is deleted")
        chunks.append(chunk)
    answer._content = b"".join(chunks)  # what Response.read() itself keeps: .json() and .text read it
    return answer
