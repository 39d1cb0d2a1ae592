"""What server/worker.py relies on in gunicorn and gevent, held so that an upgrade that changes it fails
here rather than silently. Its behaviour is tested through a running server (tests/test_slow_clients.py)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from gevent import socket as gsocket
from gevent.server import StreamServer
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from server.accept_shares import FRESH_SECONDS, AcceptShares
from server.worker import ACCEPTS_PER_WAKEUP, CONTINUE, GC_YOUNGEST_THRESHOLD, GuardedGeventWorker, RequestSocket
from tests.server import running_server

ROOT = Path(__file__).resolve().parent.parent


# GuardedGeventWorker.run is gunicorn's GeventWorker.run (version 27.0.1) with one change, listed in the test below.
GUNICORN_RUN_SHA256 = "50119854ef8be38c"


def test_the_worker_runs_gunicorns_gevent_loop_but_accepts_more_than_one_connection_at_a_time():
    # A change to gunicorn's run (how it serves listeners, stops, or drains) must be carried over by hand.
    source = inspect.getsource(GeventWorker.run)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == GUNICORN_RUN_SHA256, (
        "gunicorn's GeventWorker.run changed: compare it with GuardedGeventWorker.run, then update the hash"
    )
    assert "server.max_accept = 1" in source  # the one difference, and the reason for the override
    assert GuardedGeventWorker.run is not GeventWorker.run
    assert StreamServer.max_accept == ACCEPTS_PER_WAKEUP  # gevent's default, which gunicorn lowers


def test_gunicorn_hands_each_connection_to_the_handle_method_the_worker_wraps():
    # The worker's run serves each listener with partial(self.handle, listener), as gunicorn's does; the socket is
    # wrapped there and handed on to gunicorn's handling.
    assert list(inspect.signature(GeventWorker.handle).parameters) == ["self", "listener", "client", "addr"]
    assert "partial(self.handle, s)" in inspect.getsource(GeventWorker.run)
    assert GuardedGeventWorker.handle is not AsyncWorker.handle


def test_gunicorn_sends_100_continue_with_send_which_the_socket_drops():
    # The socket reads the body before gunicorn sees the request, answering 100-continue itself; gunicorn's own
    # (sent as the request is parsed) would be a second one.
    from gunicorn.http import wsgi

    assert 'sock.send(b"HTTP/1.1 100 Continue\\r\\n\\r\\n")' in inspect.getsource(wsgi.create)
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_gevent_sendall_sends_through_send_with_a_timeout():
    # RequestSocket.send passes gevent's own keyword (the time left) through to gevent's send.
    assert "timeout" in inspect.signature(gsocket.socket.send).parameters
    assert issubclass(RequestSocket, gsocket.socket)


def test_the_workers_keep_the_systems_poll_for_the_libraries_readiness_checks():
    # gunicorn.conf.py vetoes gevent's patching of select; gunicorn patches again in each worker (GeventWorker.patch).
    code = (
        "import runpy, select; runpy.run_path('gunicorn.conf.py'); from gevent import monkey; monkey.patch_all(); "
        "print(monkey.is_module_patched('socket'), monkey.is_module_patched('select'), "
        "select.poll is monkey.get_original('select', 'poll'))"
    )
    env = {**os.environ, "DEBUG": "true"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True False True"
    assert "monkey.patch_all()" in inspect.getsource(GeventWorker.patch)


def test_the_worker_connections_the_worker_sets_are_the_pool_it_serves_them_from():
    # init_process lowers worker_connections to what the open-file limit allows; run sizes its pool by that
    # attribute (as gunicorn's run does), which AsyncWorker sets from the configuration.
    assert "Pool(self.worker_connections)" in inspect.getsource(GuardedGeventWorker.run)
    assert "Pool(self.worker_connections)" in inspect.getsource(GeventWorker.run)
    assert "self.worker_connections = self.cfg.worker_connections" in inspect.getsource(AsyncWorker.__init__)


def test_the_signal_handlers_the_worker_extends_are_gunicorns():
    # handle_quit and handle_exit mark the worker as stopping (idle keep-alive connections close sooner).
    from gunicorn.workers.base import Worker

    source = inspect.getsource(Worker.init_signals)
    assert "signal.signal(signal.SIGQUIT, self.handle_quit)" in source
    assert "signal.signal(signal.SIGTERM, self.handle_exit)" in source
    assert list(inspect.signature(GeventWorker.handle_quit).parameters) == ["self", "sig", "frame"]
    assert list(inspect.signature(Worker.handle_exit).parameters) == ["self", "sig", "frame"]


def test_the_configuration_the_worker_checks_is_gunicorns():
    # check_config refuses TLS and HTTP/2, which the socket's reading does not handle; the arbiter calls it.
    from gunicorn import arbiter
    from gunicorn.config import Config

    assert "self.worker_class.check_config(self.cfg, self.log)" in inspect.getsource(arbiter.Arbiter)
    cfg = Config()
    assert (bool(cfg.is_ssl), cfg.protocol, "h2" in cfg.http_protocols) == (False, "http", False)


def test_a_worker_freezes_what_it_loaded_and_collects_its_youngest_objects_less_often():
    # Measured under held streams (docs/performance.md, "The garbage collector"); at CPython's defaults nothing is
    # frozen and the threshold is 700.
    with running_server(app="tests.gc_state_app") as url:
        state = httpx.get(f"{url}/gc-state", timeout=10).json()
    assert state["threshold"][0] == GC_YOUNGEST_THRESHOLD
    assert state["frozen"] > 50_000  # Django, DRF and the service's modules, not a handful of objects


def test_a_worker_spawns_greenlets_without_recording_who_spawned_them():
    script = textwrap.dedent(
        """
        from core.cooperative import gevent_patch_all
        gevent_patch_all()
        import gevent
        greenlet = gevent.spawn(lambda: None)
        assert greenlet.spawning_stack is None and greenlet.spawning_greenlet is None, greenlet.spawning_stack
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_listener_takes_one_connection_at_a_time_while_its_loop_keeps_up_and_its_share_of_the_queue_once_late():
    script = textwrap.dedent(
        """
        from core.cooperative import gevent_patch_all
        gevent_patch_all()
        import os, socket, tempfile, time
        from server.worker import ACCEPTS_PER_WAKEUP, Listener, accept_queue_length

        def busy(seconds):  # work that never yields: the loop runs late
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass

        listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        server = Listener(listener, handle=lambda client, address: None, workers=2)
        waiting = [socket.create_connection(listener.getsockname()) for _ in range(10)]
        time.sleep(0.1)  # the loop's lag sampler runs; the server is not started, so the connections wait
        assert accept_queue_length(listener) == 10, accept_queue_length(listener)
        assert server.max_accept == 1, server.max_accept
        busy(1.0)
        assert server.max_accept == 5, server.max_accept  # half of what waits: the other worker takes the rest
        waiting += [socket.create_connection(listener.getsockname()) for _ in range(2 * ACCEPTS_PER_WAKEUP)]
        time.sleep(0.1)
        busy(1.0)
        assert server.max_accept == ACCEPTS_PER_WAKEUP, server.max_accept
        time.sleep(0.1)  # free again: one at a time at once, not once an average has caught up
        assert server.max_accept == 1, server.max_accept

        lonely = Listener(socket.create_server(("127.0.0.1", 0)), handle=lambda client, address: None, workers=2)
        busy(1.0)
        assert lonely.max_accept == 1, lonely.max_accept  # late, but nothing waits: one at a time

        path = os.path.join(tempfile.mkdtemp(), "socket")
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(path)
        unix.listen()
        told_nothing = Listener(unix, handle=lambda client, address: None, workers=2)
        assert accept_queue_length(unix) is None
        busy(1.0)
        assert told_nothing.max_accept == ACCEPTS_PER_WAKEUP, told_nothing.max_accept
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _workers_holding(port: int, client_ports: set[int]) -> list[int]:
    """How many of the clients' connections each process holds, read from /proc: the server side of each connection
    (local port `port`, remote port one of the clients') by its socket's inode, then which process has that socket."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == port and int(remote.rsplit(":", 1)[1], 16) in client_ports:
                    inodes.add(f"socket:[{inode}]")
    held: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue  # gone, or not ours to read
        count = sum(link in inodes for link in links)
        if count:
            held[pid] = count
    return sorted(held.values())


def test_a_burst_of_keep_alive_clients_is_shared_between_the_workers():
    # 32 clients connecting at once to two workers whose loops keep up: the worker that is running accepted again
    # before the other was scheduled, and kept most of each burst (9/23, 4/28, 15/113 of 128) for as long as the
    # clients stayed connected.
    async def burst(port: int, clients: int) -> list[int]:
        """`clients` connecting at once, each sending its request as soon as it is connected; how many each worker
        holds once all are answered."""

        async def connect() -> asyncio.StreamWriter:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            return writer

        writers = await asyncio.gather(*(connect() for _ in range(clients)))
        try:
            return _workers_holding(port, {writer.get_extra_info("sockname")[1] for writer in writers})
        finally:
            for writer in writers:
                writer.close()
            await asyncio.sleep(0.3)  # the workers see the clients gone

    with running_server(HISTORY_BACKEND="redis", WEB_CONCURRENCY="2") as url:
        port = int(url.rsplit(":", 1)[1])
        with ThreadPoolExecutor(1) as thread:  # an event loop of its own: this thread may run one already
            # Both workers serving first: a worker holds the listening socket from its fork on, but takes nothing
            # while it still loads the application (a first burst went 1/31 on a busy machine).
            deadline = time.monotonic() + 30
            while len(thread.submit(asyncio.run, burst(port, 8)).result()) < 2:
                assert time.monotonic() < deadline, "only one worker answered"
            time.sleep(0.5)  # each worker counting its connections for the other
            bursts = [thread.submit(asyncio.run, burst(port, 32)).result() for _ in range(4)]
        busier = sum(held[-1] for held in bursts if len(held) == 2) + sum(held[0] for held in bursts if len(held) == 1)
        assert busier <= 80, bursts  # of 128: each burst shared, give or take a few


def test_a_worker_leaves_connections_only_to_another_that_keeps_up_and_takes_them():
    shares = AcceptShares()
    assert not shares.over_share(1, 5)  # alone
    shares.publish(2, 0)
    assert shares.over_share(1, 2) and not shares.over_share(1, 1)  # more than the other's 0 plus the margin
    assert not shares.over_share(2, 0)
    shares.withdraw(2)  # stopping
    assert not shares.over_share(1, 2)
    shares.publish(2, 0)
    time.sleep(FRESH_SECONDS + 0.05)  # its loop has not come round to publishing since: late
    assert not shares.over_share(1, 2)


def test_two_workers_never_both_leave_connections_to_the_other():
    """Each writes its count as it asks, before it accepts: a count the other reads is never below the worker's own
    by more than the connection it accepts next, so two workers cannot both hold more than the other."""
    shares = AcceptShares()
    shares.publish(1, 1000)  # every PUBLISH_SECONDS; each has accepted since, asking each time
    shares.publish(2, 998)
    assert shares.over_share(2, 1004)  # against the 1,000 written by worker 1's last publish
    assert not shares.over_share(1, 1003)  # against the 1,004 worker 2 wrote as it asked, not its published 998
    time.sleep(FRESH_SECONDS + 0.05)  # a count written as it asks does not say the worker's loop keeps up
    assert not shares.over_share(2, 1005)


def test_a_worker_on_several_listeners_weighs_all_its_connections_against_the_other_workers():
    script = textwrap.dedent(
        """
        from core.cooperative import gevent_patch_all
        gevent_patch_all()
        import socket, time
        import gevent
        from gevent.pool import Pool
        from server.accept_shares import AcceptShares
        from server.worker import Listener

        shares, listeners = AcceptShares(), []

        def held():
            return sum(len(listener.pool) for listener in listeners)

        for _ in range(2):  # two `bind` addresses
            listeners.append(Listener(socket.create_server(("127.0.0.1", 0)), handle=lambda client, address: None,
                                      spawn=Pool(10), workers=2, shares=shares, slot=1, held=held))
        quiet, busy = listeners
        for _ in range(5):
            busy.pool.spawn(gevent.sleep, 10)
        time.sleep(0.1)  # the loop's lag sampler runs: the loop keeps up
        shares.publish(2, 3)  # the other worker, keeping up too
        assert quiet._leave_to_another()  # this worker holds 5 (none of them on this listener) against its 3
        shares.publish(2, 4)
        assert not quiet._leave_to_another()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
