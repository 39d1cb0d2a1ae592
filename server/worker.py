"""gunicorn's gevent worker (`worker_class` in gunicorn.conf.py), made safe against slow and idle clients, and
refusing the new chats it has no room for before gunicorn's parser or Django spend anything on them.

A connection costs a greenlet, not a thread, so thousands of streams, slow clients and idle keep-alive connections
fit in one worker. What gevent alone leaves open, this adds: each request is read whole, under a deadline
(REQUEST_READ_TIMEOUT_SECONDS), before gunicorn's parser sees a byte of it, and what waits in memory is bounded
(REQUEST_BUFFER_BYTES); a write waits a bounded time on a client that does not read
(RESPONSE_WRITE_TIMEOUT_SECONDS); closing lingers so that a client still sending reads its answer. A request that
would start a chat while the worker holds MAX_CHATS_IN_FLIGHT of them, or while its event loop runs late (for a new
stream, while it holds as many streams as its loop keeps up with), is answered 503 `server_busy` from the socket
(core/admission.py), for about 20 µs of Python: under a load far over what the worker serves, every refusal made
later (gunicorn's parser, the middleware) would take the core its chats and health probes need. All of it lives in
the connection's socket, so gunicorn's own request handling runs unchanged. The worker's loop takes one new
connection each time it comes round to its listener while it keeps up (so that the workers share a burst of new
connections), and once it runs late its share of the connections waiting in the kernel's queue, so that refusals and
health answers do not wait there while every worker is busy, and a busy worker does not take a burst from an idle
one. The gunicorn methods overridden (`run`, gunicorn's but for its listeners and the garbage collector's tuning, and
`handle`), and the attributes and signal handlers the worker relies on are held by tests/test_worker.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import json
import resource
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import gevent
from django.conf import settings
from gevent import socket as gsocket
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.workers.ggevent import GeventWorker

from core.admission import NEW_CHAT_PATH, STREAM_REQUESTED, AdmissionGate, StreamCap, refusal_bytes
from core.loop_lag import loop_lag
from server.accept_shares import PUBLISH_SECONDS, AcceptShares

READ_CHUNK = 64 * 1024
# nginx's default header buffers hold 32 KiB; gunicorn's own field limits allow more than anyone sends.
MAX_HEAD_BYTES = 64 * 1024
# As gunicorn's close_graceful: how long, and how much, a closing connection is read and dropped.
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024
# Descriptors left for what is not a client: Redis, the upstream pool (LLM_MAX_CONNECTIONS), logs, metrics files.
FD_RESERVE = 1024
# How long a connection kept alive waits for its next request while the worker stops.
STOPPING_IDLE_SECONDS = 1.0
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Connections a listener accepts at most each time the event loop finds it ready (gevent's own default). gunicorn
# takes one at a time with several workers, to share connections out evenly; but a loop busy with thousands of
# streams comes round to its listener a few times a second, and at one connection each time new clients and health
# probes waited seconds in the kernel's queue, unanswered and unrefused (docs/performance.md). Taking 100 at every
# turn, though, a worker whose loop was idle took a whole burst of new keep-alive connections (32 or 128 clients
# connecting at once) and served them alone for their life while the other worker idled; and taking 100 whenever its
# loop ran late, a worker busy with a burst took most of it, and was the busier for as long as they stayed connected.
# So a worker takes one at a time while its loop keeps up, and once it runs ACCEPT_MANY_AFTER_LAG_SECONDS late (late
# now, by its latest sample), its share of what waits in the kernel's queue: while the other workers keep up, that
# stays at one; when every worker is behind, the queue is emptied by all of them at once.
ACCEPTS_PER_WAKEUP = 100
ACCEPT_MANY_AFTER_LAG_SECONDS = 0.02
# Where Linux's TCP_INFO of a listening socket holds the connections waiting in its accept queue (tcpi_unacked).
TCP_INFO_QUEUED_OFFSET = 24
# How long a worker holding more connections than another stops taking them (server/accept_shares.py), so that the
# other, woken by the same connection, takes it: about the time the kernel takes to schedule a woken process.
ACCEPT_PAUSE_SECONDS = 0.002
# ... and for this long at most in a row, in case the other stopped accepting without its loop running late.
ACCEPT_PAUSES_SECONDS = 0.02
# CPython collects its youngest generation after 700 new objects by default. A worker holding a thousand streams
# allocates hundreds of thousands of objects a second and keeps a few hundred thousand alive, so at the default its
# collector ran a full collection every few seconds, each pausing the loop (and every stream, refusal and health
# probe in it) for 0.4-0.6 s. Collected after 3,000 instead, with what the worker loaded frozen out of every
# collection, the workers spent about half the time collecting and a refusal's p99 fell from 1.3 s to 0.4-0.5 s at
# 4,000 streams (docs/performance.md, "The garbage collector").
GC_YOUNGEST_THRESHOLD = 3000


class Listener(StreamServer):
    """gevent's server for one listening socket shared by `workers` processes: one new connection each time the loop
    comes round to it while the loop keeps up, so that the workers (each woken by a new connection) share a burst of
    them; while the loop runs late, this worker's share of the connections waiting, so that the kernel's queue does
    not fill (ACCEPTS_PER_WAKEUP above). While it keeps up, and holds more connections than another worker that keeps
    up too (`shares`), it pauses for ACCEPT_PAUSE_SECONDS instead (ACCEPT_PAUSES_SECONDS in a row at most). What the
    worker holds is `held()`, its connections on all its listeners (by default this listener's)."""

    def __init__(
        self,
        listener: Any,
        *,
        workers: int,
        shares: AcceptShares | None = None,
        slot: int = 0,
        held: Callable[[], int] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(listener, **options)
        self.workers = workers
        self.shares = shares
        self.slot = slot
        self.held = held or (lambda: len(self.pool))
        self.resume_timer = self.loop.timer(ACCEPT_PAUSE_SECONDS)
        self.pausing_since: float | None = None

    @property  # type: ignore[override]  # gevent's class attribute, read on each wakeup
    def max_accept(self) -> int:
        if _loop_keeps_up():
            return 1
        queued = accept_queue_length(self.socket)
        if queued is None:
            return ACCEPTS_PER_WAKEUP
        return max(1, min(ACCEPTS_PER_WAKEUP, queued // self.workers))

    def do_read(self) -> Any:
        if self._leave_to_another():
            now = time.monotonic()
            if self.pausing_since is None:
                self.pausing_since = now
            if now - self.pausing_since < ACCEPT_PAUSES_SECONDS:
                self._pause()
                return None
        self.pausing_since = None
        return super().do_read()

    def _leave_to_another(self) -> bool:
        """Whether this worker, keeping up, holds more connections than another that keeps up too. A late worker
        takes its share of the queue (max_accept) instead."""
        if self.shares is None or self.pool is None or not _loop_keeps_up():
            return False
        return self.shares.over_share(self.slot, self.held())

    def _pause(self) -> None:
        self.stop_accepting()
        self.resume_timer.start(self._resume)

    def _resume(self) -> None:
        if self.started:  # not closed meanwhile: the worker is stopping
            self.start_accepting()


def _loop_keeps_up() -> bool:
    """Late now by its latest sample, not by the admission's moving average, which still reads late for a few hundred
    ms after the loop is free."""
    return loop_lag.latest_seconds() <= ACCEPT_MANY_AFTER_LAG_SECONDS


def accept_queue_length(listener: Any) -> int | None:
    """How many connections wait in a TCP listener's accept queue, by Linux's TCP_INFO; None where it is not told
    (another system, a Unix socket)."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_QUEUED_OFFSET + 4)
    except (OSError, AttributeError):
        return None
    queued: int = struct.unpack_from("I", info, TCP_INFO_QUEUED_OFFSET)[0]
    return queued


def garbage_collector_tune() -> None:
    """Once the application is loaded: its modules, settings and caches frozen out of the collector's work (they
    live as long as the worker), and the youngest generation collected less often (GC_YOUNGEST_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, middle, oldest)


def error_response(status: str, code: str, detail: str) -> bytes:
    """A closing answer in the API's error shape, for what is refused before any view runs."""
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
    """What is needed of a request head to know when the request is whole. gunicorn's parser checks the request
    properly afterwards; a head this misreads costs nothing there, since the parser reads only what was read here."""

    end: int  # where the body starts in the buffer
    body_length: int
    chunked: bool
    expects_continue: bool
    keep_alive: bool
    new_chat_path: str | None  # the path of a POST that starts a chat

    @property
    def length(self) -> int:
        return self.end + self.body_length

    @classmethod
    def of(cls, head: bytes, end: int) -> Framing:
        request_line, *fields = head.lstrip(b"\r\n").split(b"\r\n")
        length, chunked, expects_continue = 0, False, False
        keep_alive = request_line.endswith(b"HTTP/1.1")
        for field in fields:
            name, _, value = field.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length" and value.isdigit():
                length = int(value) if len(value) < 16 else sys.maxsize
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = request_line.endswith(b"HTTP/1.1")  # HTTP/1.0 must ignore it (RFC 9110 10.1.1)
            elif name == b"connection":
                keep_alive = value.lower() == b"keep-alive" or (keep_alive and value.lower() != b"close")
        return cls(end, length, chunked, expects_continue, keep_alive, new_chat_path(request_line))


def new_chat_path(request_line: bytes) -> str | None:
    """The path of a request line that starts a chat (a POST to one of core.admission's paths), else None."""
    if not request_line.startswith(b"POST /"):
        return None
    target = request_line[5:].rpartition(b" ")[0].partition(b"?")[0]
    path = target.decode("latin-1")
    return path if NEW_CHAT_PATH.fullmatch(path) else None


@dataclass
class Limits:
    """One worker's deadlines and the memory its requests may wait in, shared by its connections."""

    read_timeout: float
    write_timeout: float
    keepalive: float
    max_body: int
    buffer_budget: int
    max_chats: int
    max_lag_ms: int
    buffered: int = 0
    stopping: bool = False
    chats: int = 0  # requests that start a chat, taken and not yet answered
    streams: int = 0  # of those, the ones that asked for a streamed reply
    gate: AdmissionGate = dataclasses.field(default_factory=AdmissionGate)
    stream_cap: StreamCap = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.stream_cap = StreamCap(self.max_chats)

    def admit(self, path: str, framing: Framing, streamed: bool) -> bytes | None:
        """None when a new chat is taken (counted until its answer ends), else the refusal to send."""
        lag = loop_lag.seconds()
        refusal = self.gate.refusal(self.chats, self.max_chats, lag, self.max_lag_ms)
        if refusal is None and streamed:
            refusal = self.stream_cap.refusal(self.streams, lag, time.monotonic())
        if refusal is None:
            self.chats += 1
            self.streams += streamed
            return None
        return refusal_bytes(path, refusal, keep_alive=framing.keep_alive)


class RequestSocket(gsocket.socket):
    """A client connection whose requests are read whole, under REQUEST_READ_TIMEOUT_SECONDS, before the parser reads
    them from memory; its writes wait RESPONSE_WRITE_TIMEOUT_SECONDS at most."""

    def setup(self, limits: Limits) -> RequestSocket:
        self.limits = limits
        self.pending = bytearray()  # read, not yet part of a whole request (a pipelined next one)
        self.request = memoryview(b"")  # a whole request, handed to the parser as it asks
        self.requests = 0
        self.chat_admitted = False  # the request being answered starts a chat, taken by this worker (limits.chats)
        self.stream_admitted = False  # ... and asked for a streamed reply (limits.streams)
        self.body_missing = False  # the body is over MAX_REQUEST_BYTES: the view answers from the head alone
        self.stalled = False  # a write timed out: the client stopped reading
        return self

    # --- reading ---------------------------------------------------------------------------------------------

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.request and (self.body_missing or not self._read_request()):
            return b""  # gunicorn sees the client gone and closes the connection
        piece, self.request = bytes(self.request[:size]), self.request[size:]
        return piece

    def _read_request(self) -> bool:
        """Reads until `pending` holds a whole request, which becomes `request`; False when the connection is to close
        (the client left or stayed silent, or was answered here). A new chat the worker has no room for is answered
        here, and the next request read."""
        self._chat_answered()
        while True:
            if not self._read_one():
                return False
            framing = self.framing
            if framing.new_chat_path is None or self.body_missing:
                return True
            streamed = STREAM_REQUESTED.search(self.request, framing.end) is not None
            refusal = self.limits.admit(framing.new_chat_path, framing, streamed)
            if refusal is None:
                self.chat_admitted, self.stream_admitted = True, streamed
                return True
            self.request = memoryview(b"")
            if not framing.keep_alive:
                return self._refuse(refusal)
            self._send_quietly(refusal)

    def _chat_answered(self) -> None:
        if self.chat_admitted:
            self.limits.chats -= 1
            self.limits.streams -= self.stream_admitted
            self.chat_admitted = self.stream_admitted = False

    def _read_one(self) -> bool:
        """Reads until `pending` holds a whole request, which becomes `request` (its head read into `framing`)."""
        limits = self.limits
        first_wait = limits.read_timeout if not self.requests else limits.keepalive
        if limits.stopping:
            first_wait = min(first_wait, STOPPING_IDLE_SECONDS)
        deadline = time.monotonic() + (limits.read_timeout if self.pending else first_wait)
        started = bool(self.pending)
        framing: Framing | None = None
        while True:
            if framing is None:
                end = self.pending.find(b"\r\n\r\n")
                if end >= 0:
                    framing = Framing.of(bytes(self.pending[:end]), end + 4)
                    if framing.chunked:
                        # Django reads a WSGI body by its Content-Length only: a chunked one would reach the view empty.
                        return self._refuse(LENGTH_REQUIRED)
                    # Over the limit, the view answers 413 from the head alone; the body is never read.
                    self.body_missing = framing.body_length > limits.max_body
                    if framing.expects_continue and len(self.pending) < framing.length and not self.body_missing:
                        self._send_quietly(CONTINUE)
                elif len(self.pending) > MAX_HEAD_BYTES:
                    return self._refuse(HEAD_TOO_LARGE)
            if framing is not None and (self.body_missing or len(self.pending) >= framing.length):
                whole = framing.end if self.body_missing else framing.length
                self.framing = framing
                self.request = memoryview(bytes(self.pending[:whole]))
                del self.pending[:whole]
                limits.buffered -= whole  # the view's now, as a request being answered is
                self.requests += 1
                return True
            data = self._recv_until(deadline)
            if data is None:
                return self._refuse(TIMED_OUT) if started else self._close_quietly()
            if not data:
                return self._close_quietly()
            if limits.buffered + len(data) > limits.buffer_budget:
                return self._refuse(BUSY)
            if not started:
                started = True
                deadline = time.monotonic() + limits.read_timeout
            self.pending += data
            limits.buffered += len(data)

    def _recv_until(self, deadline: float) -> bytes | None:
        """What the client sends next, b"" if it closed, or None if nothing came by `deadline`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.settimeout(remaining)
        try:
            return super().recv(READ_CHUNK)
        except TimeoutError:
            return None
        except OSError:
            return b""

    def _refuse(self, response: bytes) -> bool:
        self._send_quietly(response)
        return self._close_quietly()

    def _close_quietly(self) -> bool:
        self.limits.buffered -= len(self.pending)
        self.pending = bytearray()
        return False

    # --- writing ---------------------------------------------------------------------------------------------

    def send(self, data: bytes, flags: int = 0, **gevent_options: Any) -> int:
        if gevent_options:  # gevent's own sendall, sending a piece under its remaining timeout
            return super().send(data, flags, **gevent_options)
        if data == CONTINUE:
            # gunicorn answers Expect: 100-continue itself, once the request is parsed: here the body is read already
            # (continued above if the client waited for it), or never will be (over MAX_REQUEST_BYTES).
            return len(data)
        return self._timed(super().send, data, flags)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._timed(super().sendall, data, flags)

    def _timed(self, write: Any, data: bytes, flags: int) -> Any:
        self.settimeout(self.limits.write_timeout)
        try:
            return write(data, flags)
        except TimeoutError:
            self.stalled = True
            # gunicorn logs a broken pipe quietly, and stops the response there.
            raise BrokenPipeError(errno.EPIPE, "the client stopped reading") from None

    def _send_quietly(self, data: bytes) -> None:
        """A short answer into an empty send buffer: it fits, and if the client is gone, nothing is lost."""
        self.settimeout(self.limits.write_timeout)
        with contextlib.suppress(OSError):
            super().sendall(data)

    # --- closing ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        if getattr(self, "limits", None) is None or self.fileno() < 0:
            super().close()
            return
        self._chat_answered()
        self.limits.buffered -= len(self.pending)
        self.pending = bytearray()
        if self.stalled:
            # A reset, not a FIN: what is still queued for a client that does not read would hold kernel memory
            # until TCP gave up on it.
            self.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self._linger()
        super().close()

    def _linger(self) -> None:
        """A FIN, then what the client still sends is read and dropped for a while, so that unread bytes do not
        make the kernel reset the connection before the client has read the response (RFC 9112 section 9.6)."""
        try:
            self.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
        while dropped <= LINGER_MAX_BYTES:
            data = self._recv_until(deadline)
            if not data:
                return
            dropped += len(data)


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


class GuardedGeventWorker(GeventWorker):
    """gunicorn's gevent worker, its connections' requests read whole under deadlines (RequestSocket). HTTP/1.1 over
    plain TCP only: TLS and HTTP/2 end before it."""

    # Made in the master, as it makes the first worker, before it forks: every worker shares the one memory.
    shares: ClassVar[AcceptShares | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedGeventWorker.shares is None:
            GuardedGeventWorker.shares = AcceptShares()

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        if cfg.is_ssl or cfg.protocol != "http" or "h2" in cfg.http_protocols:
            raise RuntimeError(f"{cls.__name__} serves HTTP/1.1 without TLS only: terminate TLS and HTTP/2 before it")

    def init_process(self) -> None:
        self.limits = Limits(
            read_timeout=settings.REQUEST_READ_TIMEOUT_SECONDS,
            write_timeout=settings.RESPONSE_WRITE_TIMEOUT_SECONDS,
            keepalive=float(self.cfg.keepalive),
            max_body=settings.MAX_REQUEST_BYTES,
            buffer_budget=settings.REQUEST_BUFFER_BYTES,
            max_chats=settings.MAX_CHATS_IN_FLIGHT,
            max_lag_ms=settings.CHAT_ADMIT_MAX_LOOP_LAG_MS,
        )
        self.worker_connections = connections_allowed(self.cfg.worker_connections)
        super().init_process()  # runs the loop

    def run(self) -> None:
        """gunicorn's GeventWorker.run, each listener a Listener (and the collector tuned first, the application
        being loaded; the worker's connections published for the other workers, server/accept_shares.py)."""
        garbage_collector_tune()
        servers: list[Listener] = []

        def held() -> int:
            return sum(len(server.pool) for server in servers)

        for listener in self.sockets:
            listener.setblocking(1)
            server = Listener(
                listener,
                handle=partial(self.handle, listener),
                spawn=Pool(self.worker_connections),
                workers=self.cfg.workers,
                shares=self.shares,
                slot=self.age,
                held=held,
            )
            server.start()
            servers.append(server)
        gevent.spawn(self.connections_publish, held)
        while self.alive:
            self.notify()
            gevent.sleep(1.0)
        self.drain(servers)

    def connections_publish(self, held: Callable[[], int]) -> None:
        """The worker's connections, in its slot of `shares`, while its loop keeps up and it takes connections."""
        assert self.shares is not None
        while True:
            time.sleep(PUBLISH_SECONDS)
            gevent.sleep(0)  # behind the ready greenlets: a late loop publishes late, and stops counting as keeping up
            if not self.alive:
                return
            self.shares.publish(self.age, held())

    def drain(self, servers: list[StreamServer]) -> None:
        """As gunicorn's worker stops: no new connection; those open are answered for up to graceful_timeout,
        then ended."""
        if self.shares is not None:
            self.shares.withdraw(self.age)
        for server in servers:
            server.close()
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() <= deadline:
            if all(server.pool.free_count() == server.pool.size for server in servers):
                return
            self.notify()
            gevent.sleep(1.0)
        self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
        for server in servers:
            server.stop(timeout=1)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        guarded = RequestSocket(client.family, client.type, client.proto, fileno=client.detach()).setup(self.limits)
        super().handle(listener, guarded, addr)

    def handle_quit(self, sig: int, frame: Any) -> None:
        self.limits.stopping = True
        super().handle_quit(sig, frame)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.limits.stopping = True
        super().handle_exit(sig, frame)
