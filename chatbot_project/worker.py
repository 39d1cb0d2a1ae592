"""gunicorn's threaded worker, made safe against slow and idle clients (`worker_class` in gunicorn.conf.py).

gthread hands each new connection to a thread, which then reads the request with blocking reads and no deadline,
and closes connections on its main loop, lingering up to 2 s each: a few hundred clients that send slowly, or
not at all, or never close, stop the worker. Here the main loop reads every request whole, without blocking and
under a deadline, and a thread only ever sees a complete request, parsed from memory; a write waits a bounded
time on a client that does not read; closing lingers in the poller. Threads stay what they are for: running
views, which wait on the upstream and Redis.
"""

from __future__ import annotations

import contextlib
import errno
import json
import resource
import selectors
import socket
import struct
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from gunicorn import http, util
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

READ_CHUNK = 64 * 1024
# nginx's default header buffers hold 32 KiB; gunicorn's own field limits allow more than anyone sends.
MAX_HEAD_BYTES = 64 * 1024
# As gunicorn's close_graceful: how long, and how much, a closing connection is read and dropped.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024
# Descriptors left for what is not a client: Redis, the upstream pool (LLM_MAX_CONNECTIONS), logs, metrics files.
FD_RESERVE = 1024
# Deadlines are checked this often; each check walks every waiting connection.
SWEEP_SECONDS = 0.5
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def error_response(status: str, code: str, detail: str) -> bytes:
    """A closing answer in the API's error shape, for what the main loop refuses before any view runs."""
    body = json.dumps({"detail": detail, "code": code}).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close"
    return f"{head}\r\n\r\n".encode() + body


TIMED_OUT = error_response("408 Request Timeout", "request_timeout", "The request was not sent in time.")
HEAD_TOO_LARGE = error_response(
    "431 Request Header Fields Too Large", "headers_too_large", f"Request headers over {MAX_HEAD_BYTES} bytes."
)
LENGTH_REQUIRED = error_response("411 Length Required", "length_required", "A request body needs a Content-Length.")
BUSY = error_response("503 Service Unavailable", "server_busy", "Too many request bodies in flight; try again.")


@dataclass(frozen=True)
class Framing:
    """What the main loop needs of a request head to know when the request is whole. gunicorn's parser checks
    the request properly in the thread; a head this misreads costs nothing there, since the thread parses only
    what was read here."""

    end: int  # where the body starts in the buffer
    body_length: int
    chunked: bool
    expects_continue: bool

    @property
    def length(self) -> int:
        return self.end + self.body_length

    @classmethod
    def of(cls, head: bytes, end: int) -> Framing:
        request_line, *fields = head.lstrip(b"\r\n").split(b"\r\n")
        length, chunked, expects_continue = 0, False, False
        for field in fields:
            name, _, value = field.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length" and value.isdigit():
                length = int(value) if len(value) < 16 else sys.maxsize
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = request_line.endswith(b"HTTP/1.1")  # HTTP/1.0 must ignore it (RFC 9110 10.1.1)
        return cls(end, length, chunked, expects_continue)


class BufferedConn(TConn):
    """A connection whose requests the main loop reads whole before a thread takes them."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, write_timeout: float) -> None:
        super().__init__(cfg, sock, client, server)
        self.write_timeout = write_timeout
        self.data_ready = True  # gthread's wait for a first byte in the thread: the main loop has the request
        self.buffer = bytearray()  # read by the main loop, not yet a thread's
        self.request = b""  # handed to a thread
        self.framing: Framing | None = None
        self.body_missing = False
        self.idle = True  # no byte of the next request yet
        self.lingering = False
        self.dropped = 0
        self.stalled = False  # a write timed out: the client stopped reading
        self.deadline = 0.0

    def init(self) -> None:
        """In the thread, before each request: a parser over what the main loop read, never the socket."""
        if self.parser is None:
            self.parser = http.get_parser(self.cfg, [], self.client)  # an empty source: its reads end at the buffer
        self.initialized = True
        self.sock.settimeout(self.write_timeout)
        self.parser.unreader.unread(self.request)
        self.request = b""

    def next_request(self, leftover: bytes) -> None:
        self.buffer = bytearray(leftover)
        self.framing = None
        self.body_missing = False
        self.idle = not leftover


def connections_allowed(wanted: int) -> int:
    """Raises the soft limit on open files to the hard one (2,000 clients do not fit in the usual 1,024), and
    returns how many connections fit under it beside everything else the worker opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # keep the soft limit; the cap below follows it
    if soft == resource.RLIM_INFINITY:
        return wanted
    return min(wanted, max(soft - FD_RESERVE, soft // 2))


class BufferedThreadWorker(ThreadWorker):
    """gthread with requests read on the main loop under REQUEST_READ_TIMEOUT_SECONDS, writes bounded by
    RESPONSE_WRITE_TIMEOUT_SECONDS and closing in the poller. HTTP/1.1 over plain TCP only: TLS ends before it."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl or cfg.protocol != "http" or "h2" in cfg.http_protocols:
            raise RuntimeError(f"{cls.__name__} serves HTTP/1.1 without TLS only: terminate TLS and HTTP/2 before it")

    def init_process(self) -> None:
        self.read_timeout = settings.REQUEST_READ_TIMEOUT_SECONDS
        self.write_timeout = settings.RESPONSE_WRITE_TIMEOUT_SECONDS
        self.max_body = settings.MAX_REQUEST_BYTES
        # Requests waiting here take at most what the threads' requests can (threads x MAX_REQUEST_BYTES): past it,
        # the connection whose bytes would not fit gets 503, so memory does not run out first.
        self.buffer_budget = self.cfg.threads * settings.MAX_REQUEST_BYTES
        self.buffered = 0
        self.waiting: set[BufferedConn] = set()  # on the poller: reading a request, or lingering
        self.next_sweep = 0.0
        self.worker_connections = connections_allowed(self.cfg.worker_connections)
        super().init_process()  # runs the loop

    # --- the main loop ------------------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            # Out of descriptors despite the reserve: the client waits in the backlog rather than the worker dying.
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                return
            raise
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, sock, client, listener.getsockname(), self.write_timeout)
        self.wait_for_request(conn, idle_for=self.read_timeout)

    def wait_for_request(self, conn: BufferedConn, idle_for: float) -> None:
        conn.deadline = time.monotonic() + (self.read_timeout if conn.buffer else idle_for)
        self.watch(conn, self.on_readable)
        if conn.buffer:  # pipelined behind the last request
            self.read_on(conn, searched=0)

    def on_readable(self, conn: BufferedConn, _sock: object) -> None:
        if conn not in self.waiting:
            return  # closed earlier in this turn of the loop, its descriptor maybe reused since
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        if self.buffered + len(data) > self.buffer_budget:
            self.refuse(conn, BUSY)
            return
        if conn.idle:
            conn.idle = False
            conn.deadline = time.monotonic() + self.read_timeout
        searched = len(conn.buffer)
        conn.buffer += data
        self.buffered += len(data)
        self.read_on(conn, searched)

    def read_on(self, conn: BufferedConn, searched: int) -> None:
        """Hands the request to a thread once it is whole; `searched` bytes were already searched for its head."""
        if conn.framing is None:
            end = conn.buffer.find(b"\r\n\r\n", max(0, searched - 3))
            if end < 0:
                if len(conn.buffer) > MAX_HEAD_BYTES:
                    self.refuse(conn, HEAD_TOO_LARGE)
                return
            conn.framing = Framing.of(bytes(conn.buffer[:end]), end + 4)
            if conn.framing.chunked:
                # Django reads a WSGI body by its Content-Length only: a chunked one would reach the view empty.
                self.refuse(conn, LENGTH_REQUIRED)
                return
            # Over the limit, the view answers 413 from the head alone; the body is never read.
            conn.body_missing = conn.framing.body_length > self.max_body
            if conn.framing.expects_continue and len(conn.buffer) < conn.framing.length and not conn.body_missing:
                self.send_quietly(conn, CONTINUE)
        if conn.body_missing or len(conn.buffer) >= conn.framing.length:
            self.unwatch(conn)
            self.buffered -= len(conn.buffer)  # the thread's now, as a request in a view is
            conn.request, conn.buffer = bytes(conn.buffer), bytearray()
            self.enqueue_req(conn)

    def finish_request(self, conn: BufferedConn, fs: Future) -> None:
        try:
            keepalive = not fs.cancelled() and bool(fs.result())
        except Exception:
            keepalive = False
        if conn.stalled:
            # A reset, not a FIN: what is still queued for a client that does not read would hold kernel memory
            # until TCP gave up on it.
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close(conn)
            return
        if not keepalive:
            self.linger(conn)
            return
        conn.sock.setblocking(False)
        # A client may pipeline its next request behind the last: the parser holds what it read past the end.
        leftover = conn.parser.unreader.take_buffered()
        conn.next_request(leftover)
        self.buffered += len(leftover)
        self.wait_for_request(conn, idle_for=self.cfg.keepalive if self.alive else STOP_KEEPALIVE_LINGER)

    def refuse(self, conn: BufferedConn, response: bytes) -> None:
        self.send_quietly(conn, response)
        self.linger(conn)

    def send_quietly(self, conn: BufferedConn, data: bytes) -> None:
        """A short answer into an empty send buffer: it fits, and if the client is gone, nothing is lost."""
        with contextlib.suppress(OSError):
            conn.sock.send(data)

    def linger(self, conn: BufferedConn) -> None:
        """Closes without blocking the loop: a FIN now, then what the client still sends is read and dropped for a
        while, so that unread bytes do not make the kernel reset the connection before the client has read the
        response (RFC 9112 section 9.6)."""
        self.buffered -= len(conn.buffer)
        conn.buffer = bytearray()
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        conn.sock.setblocking(False)
        conn.lingering = True
        conn.deadline = time.monotonic() + LINGER_SECONDS
        self.watch(conn, self.on_lingering)

    def on_lingering(self, conn: BufferedConn, _sock: object) -> None:
        if conn not in self.waiting:
            return  # as in on_readable
        try:
            dropped = len(conn.sock.recv(READ_CHUNK))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            dropped = 0
        conn.dropped += dropped
        if not dropped or conn.dropped > LINGER_MAX_BYTES:
            self.close(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        """gthread's loop calls this each turn, and with `force` on its way out: here it enforces every deadline."""
        now = time.monotonic()
        if now < self.next_sweep and not force:
            return
        self.next_sweep = now + SWEEP_SECONDS
        for conn in list(self.waiting):
            if not self.alive and conn.idle:
                conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
            if force:
                self.close(conn)
            elif conn.deadline > now:
                continue
            elif conn.lingering or conn.idle:
                self.close(conn)
            else:
                self.refuse(conn, TIMED_OUT)

    def watch(self, conn: BufferedConn, callback: Any) -> None:
        if conn in self.waiting:
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(callback, conn))
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(callback, conn))
            self.waiting.add(conn)

    def unwatch(self, conn: BufferedConn) -> None:
        if conn in self.waiting:
            self.poller.unregister(conn.sock)
            self.waiting.discard(conn)

    def close(self, conn: BufferedConn) -> None:
        self.unwatch(conn)
        self.buffered -= len(conn.buffer)
        conn.buffer = bytearray()
        self.nr_conns -= 1
        util.close(conn.sock)

    # --- in a thread -----------------------------------------------------------------------------------------

    def handle_request(self, req: Any, conn: BufferedConn) -> bool:
        # The main loop holds the whole body, and answered 100-continue if the client waited for it; gunicorn
        # would send it again (a second one is legal, so a renamed attribute costs nothing worse).
        req._expected_100_continue = False
        if conn.body_missing:
            req.force_close()  # the body may still be on its way: nothing after it can be read as a request
        try:
            return super().handle_request(req, conn)
        except TimeoutError:
            self.log.debug("Dropping a client that stopped reading for %ss", self.write_timeout)
            conn.stalled = True
            return False
