"""The process's connections to the upstream, made straight or through the proxy HTTPS_PROXY / HTTP_PROXY /
ALL_PROXY name (NO_PROXY honoured): at most `max_connections`, a request waiting for a free one within its pool
timeout, idle ones kept alive and reused newest first.

httpcore makes each connection (straight to the upstream, or through the proxy the environment names) and speaks
HTTP on it; what this pool does is hand them out in constant time. httpcore's own ConnectionPool walks all of its
connections on every request and every response, checking each idle one's socket, so its CPU per call grows with
the connections it holds, which are as many as the chats in flight."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import httpcore

DEFAULT_PORTS = {"https": 443, "http": 80}
# httpx's default: an idle connection older than this may already be closed at the upstream's end.
KEEPALIVE_SECONDS = 5.0


class UpstreamConnections:
    def __init__(self, factory: httpcore.ConnectionPool, max_connections: int) -> None:
        """`factory` makes each connection (its create_connection); its own pool is not used."""
        self._factory = factory
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list[httpcore.ConnectionInterface] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        """The response on a connection of the pool's; closing it (having read it to the end, or not) gives the
        connection back: kept alive when its exchange is complete, closed otherwise."""
        if not self._slots.acquire(timeout=request.extensions["timeout"]["pool"]):
            raise httpcore.PoolTimeout("No upstream connection became free in time.")
        try:
            connection = self._reusable() or self._factory.create_connection(request.url.origin)
            try:
                response = connection.handle_request(request)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._slots.release()
            raise
        response.stream = _Body(response.stream, partial(self._give_back, connection))
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _reusable(self) -> httpcore.ConnectionInterface | None:
        """The newest idle connection the upstream has not closed meanwhile, or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if connection.is_idle() and not connection.has_expired():
                return connection
            connection.close()

    def _give_back(self, connection: httpcore.ConnectionInterface) -> None:
        if connection.is_idle():
            with self._lock:
                self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()


class _Body:
    """A response's body as httpcore streams it; closing it, once, gives its connection back."""

    def __init__(self, stream: Any, give_back: Callable[[], None]) -> None:
        self._stream = stream
        self._give_back = give_back
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)  # no generator of its own: this runs for every chunk of a streamed reply

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._stream.close()  # complete: the connection stays open; not: it is closed
            finally:
                self._give_back()


def connection_pool(url: SplitResult, max_connections: int) -> UpstreamConnections:
    """Keep-alive connections for `url`'s origin (through the proxy the environment names for it, if any), at most
    `max_connections`: a request waits for a free one within its deadline."""
    factory = httpcore.ConnectionPool(proxy=_proxy_for(url), keepalive_expiry=KEEPALIVE_SECONDS)
    return UpstreamConnections(factory, max_connections)


def _proxy_for(url: SplitResult) -> httpcore.Proxy | None:
    """The proxy that HTTPS_PROXY / HTTP_PROXY (or ALL_PROXY) name for `url`, unless NO_PROXY exempts its host. A
    plain-HTTP upstream's requests are forwarded through it; an HTTPS upstream is reached through a tunnel."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme or "http") or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host_of(url)):
        return None
    parts = urlsplit(proxy)
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    return httpcore.Proxy(parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl(), auth=auth)


def host_of(url: SplitResult) -> str:
    """The upstream's host:port, for error details and logs: never the URL, which may carry credentials or a query."""
    host = _bracketed(url.hostname or "")
    port = url.port or DEFAULT_PORTS.get(url.scheme)
    return f"{host}:{port}" if port else host


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
