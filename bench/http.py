"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load generator.

aiohttp or httpx would spend several times more CPU per request, and the load generator shares the machine's
two cores with the service it measures. This speaks just enough HTTP for the benchmark: one request at a time
per connection, `Content-Length` or chunked bodies, and a reconnect when the server closed an idle connection.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Any


class HTTPError(Exception):
    """The connection failed or the answer was not HTTP."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    def __init__(self, host: str, port: int, timeout: float = 30.0, source: str | None = None) -> None:
        """`source`: the local address to connect from (any 127.x.y.z on loopback), for a client address of its own."""
        self.host, self.port, self.timeout, self.source = host, port, timeout, source
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def _open(self) -> None:
        local = (self.source, 0) if self.source else None
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    def _encode(self, method: str, path: str, body: Any, headers: dict[str, str] | None) -> bytes:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(data)}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """One request and its whole answer. A request on a reused connection that the server had already
        closed (its keep-alive ran out, or the worker was recycled) is sent once more on a new connection."""
        raw = self._encode(method, path, body, headers)
        reused = self._writer is not None
        try:
            return await asyncio.wait_for(self._exchange(raw), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError, HTTPError) as exc:
            self.close()
            if not (reused and getattr(exc, "before_answer", False)):
                raise HTTPError(str(exc) or type(exc).__name__) from exc
        except TimeoutError as exc:
            self.close()
            raise HTTPError("timeout") from exc
        self.reconnects += 1
        try:
            return await asyncio.wait_for(self._exchange(raw), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError, HTTPError, TimeoutError) as exc:
            self.close()
            raise HTTPError(str(exc) or type(exc).__name__) from exc

    async def _exchange(self, raw: bytes) -> Response:
        if self._writer is None:
            await self._open()
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(raw)
            status, headers = await self._read_head()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            exc.before_answer = True  # type: ignore[attr-defined]
            raise
        # A 204 or 304 has no body, whatever its headers say.
        body = b"" if status in (204, 304) else await self._read_body(headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    async def _read_head(self) -> tuple[int, dict[str, str]]:
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1."):
            raise HTTPError("not an HTTP answer")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        assert self._reader is not None
        if "content-length" in headers:
            return await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join([chunk async for chunk in self._chunks()])
        data = await self._reader.read()  # the body ends with the connection
        self.close()
        return data

    async def _chunks(self):
        assert self._reader is not None
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return
            chunk = await self._reader.readexactly(size + 2)
            yield chunk[:-2]

    async def first_event(
        self, path: str, body: Any, headers: dict[str, str] | None, marker: bytes
    ) -> tuple[float, int, bytes]:
        """Sends a streaming request; returns (seconds to the first body bytes containing `marker`, status, the
        whole body). The stream is read to its end, so the connection can be reused."""
        raw = self._encode("POST", path, body, headers)
        await asyncio.wait_for(self._exchange_head(raw), self.timeout)
        started = self._sent_at
        assert self._reader is not None
        status, response_headers = self._head
        first: float | None = None
        seen = bytearray()
        if response_headers.get("transfer-encoding", "").lower() != "chunked":
            seen += await self._read_body(response_headers)
            first = time.perf_counter()
        else:
            async for chunk in self._chunks():
                seen += chunk
                if first is None and marker in seen:
                    first = time.perf_counter()
        if first is None:
            raise HTTPError(f"no {marker!r} in the stream (status {status})")
        return first - started, status, bytes(seen)

    async def _exchange_head(self, raw: bytes) -> None:
        if self._writer is None:
            await self._open()
        assert self._reader is not None and self._writer is not None
        self._sent_at = time.perf_counter()
        self._writer.write(raw)
        self._head = await self._read_head()
