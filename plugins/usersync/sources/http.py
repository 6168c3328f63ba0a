"""What the HTTP sources (Microsoft Graph, SCIM, Webex) share: secure URLs only, a bearer token renewed once
on 401, one retry layer for throttling, and answers read within bounds."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from httpx._utils import get_environment_proxies  # how httpx itself reads HTTP(S)_PROXY and NO_PROXY

from usersync.sources.errors import SourceError, SourceQueryError, SourceUnreachable

log = logging.getLogger(__name__)

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


# --- one client core for the JSON APIs (Graph, SCIM, Webex): a bearer token as an httpx Auth flow, one retry
# --- layer for throttling, and answers read capped, timed and said in words -------------------------------


class Tokens(Protocol):
    """Where bearer tokens come from: ``token(renew)`` — a fresh one when ``renew`` (after a 401)."""

    def token(self, renew: bool = False) -> str: ...


class BearerAuth(httpx.Auth):
    """The token in the Authorization header; a 401 renews it once and sends the request again (a second 401
    is the caller's to say in words). The token goes nowhere else: not in URLs, not in messages."""

    def __init__(self, tokens: Tokens, service: str):
        self.tokens, self.service = tokens, service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.tokens.token()}"
        answer = yield request
        if answer.status_code == 401:
            log.info("%s refused the token (401): renewing it once", self.service)
            request.headers["Authorization"] = f"Bearer {self.tokens.token(renew=True)}"
            yield request


@dataclass
class RetryCounts:
    """What the retry layer did on one client, over all its routes: requests sent, seconds waited."""

    requests: int = 0
    waited: float = 0.0


class Throttled(httpx.BaseTransport):
    """The retry layer: a 429 or 503 waits ``Retry-After`` seconds (at most ``max_wait``) and is sent again, up
    to ``max_retries`` more times, its body left unread; counts every request sent and every second waited."""

    def __init__(self, inner: httpx.BaseTransport, service: str, max_retries: int, max_wait: float,
                 sleep: Callable[[float], None], counts: RetryCounts):
        self.inner, self.service, self.max_retries, self.max_wait, self.sleep = inner, service, max_retries, max_wait, sleep
        self.counts = counts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tries = 0
        while True:
            tries += 1
            self.counts.requests += 1
            answer = self.inner.handle_request(request)
            if answer.status_code not in (429, 503) or tries > self.max_retries:
                return answer
            wait = min(retry_after(answer), self.max_wait)
            answer.close()
            log.warning("%s answered %d (throttled); waiting %.0f s as Retry-After says (try %d of %d)",
                        self.service, answer.status_code, wait, tries, self.max_retries + 1)
            self.counts.waited += wait
            self.sleep(wait)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class HttpSettings:
    """How a JSON API is reached: the CA bundle, the timeout, throttling bounds, the largest answer read."""

    ca_certs_file: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    max_wait: float = 120.0
    max_response_bytes: int = int(MAX_RESPONSE_MB * 2**20)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> HttpSettings:
        """A connection's extras ``ca_certs_file``, ``timeout`` (s), ``max_retries`` (on 429 / 503), ``max_wait``
        (s, the longest Retry-After honoured), ``max_response_mb``."""
        return cls(ca_certs_file=extra.get("ca_certs_file") or None, timeout=float(extra.get("timeout", 60)),
                   max_retries=int(extra.get("max_retries", 5)), max_wait=float(extra.get("max_wait", 120)),
                   max_response_bytes=max_response_bytes(extra))


class JsonHttp:
    """One HTTP client for a JSON API (``service`` names it in messages): sends through the auth flow and the
    retry layer, reads the answer capped, and turns a timeout or a lost connection into ``SourceUnreachable``.
    ``transport``: the wire (tests hand in httpx's MockTransport)."""

    def __init__(self, service: str, settings: HttpSettings, auth: httpx.Auth | None = None,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None):
        self.service, self.settings, self.counts = service, settings, RetryCounts()
        verify: Any = ssl.create_default_context(cafile=settings.ca_certs_file) if settings.ca_certs_file else True

        def throttled(wire: httpx.BaseTransport) -> Throttled:
            return Throttled(wire, service, settings.max_retries, settings.max_wait, sleep, self.counts)

        # the proxies of the environment (HTTPS_PROXY, NO_PROXY, …), as httpx applies them itself when it builds
        # its own transports: behind the retry layer and with the connection's CA bundle, like direct routes
        self.mounts: dict[str, httpx.BaseTransport | None] = {} if transport is not None else {
            pattern: None if proxy is None else throttled(httpx.HTTPTransport(verify=verify, proxy=proxy))
            for pattern, proxy in get_environment_proxies().items()}
        self._http = httpx.Client(timeout=settings.timeout, auth=auth, mounts=self.mounts,
                                  transport=throttled(transport or httpx.HTTPTransport(verify=verify)))
        self.seconds = 0.0  # time spent waiting on the server (the benchmark's "share spent on HTTP")

    @property
    def requests(self) -> int:
        return self.counts.requests

    @property
    def waited(self) -> float:
        return self.counts.waited

    def send(self, method: str, url: str, params: Mapping[str, str] | None = None, json: Any = None,
             data: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        started = time.perf_counter()
        try:
            with self._http.stream(method, url, params=params, json=json, data=data, headers=headers) as answer:
                return read_capped(answer, self.settings.max_response_bytes, url)
        except httpx.TimeoutException:
            raise SourceUnreachable(f"{self.service} did not answer within {self.settings.timeout:g} s ({url})") from None
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"cannot reach {self.service} at {url}: {type(exc).__name__}: {exc}") from None
        finally:
            self.seconds += time.perf_counter() - started

    def json_of(self, answer: httpx.Response, url: str) -> Any:
        """The answer's JSON; an answer that is not JSON (a proxy's login page, a gateway's error) fails naming
        the URL and what came instead."""
        try:
            return answer.json()
        except ValueError:
            raise SourceQueryError(f"{self.service} answered {answer.status_code} with something that is not JSON "
                                   f"({answer.headers.get('content-type', 'no content type')}; a proxy or gateway in "
                                   f"between?) at {url}: {answer.text[:120]!r}") from None

    def close(self) -> None:
        self._http.close()
