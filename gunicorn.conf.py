"""gunicorn settings for `make run` and the Docker image. Every value can be overridden from the environment."""

from __future__ import annotations

# The workers run gevent (worker_class below). Patched here, before Django and the libraries load in the master, so
# that every lock, queue and socket they make is gevent's in the workers that fork from it.
# select is left alone: core/cooperative.py says why.
from core.cooperative import gevent_patch_all

gevent_patch_all()

import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import django  # noqa: E402

from chatbot_project.checks import configuration_errors_raise  # noqa: E402
from core.host_slots import host_slots_dir_prepare  # noqa: E402
from core.metrics_multiprocess import metrics_dir_prepare, metrics_worker_exited  # noqa: E402
from core.tracing import tracing_configuration_check, tracing_stop  # noqa: E402

# Before anything imports prometheus_client: the workers' metrics add up in one directory.
metrics_dir_prepare()
# Before settings read it: the workers share BCRYPT_MAX_CONCURRENT through slot files in one directory.
host_slots_dir_prepare()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_project.settings")
try:
    django.setup()
    configuration_errors_raise()
    tracing_configuration_check()
except Exception as exc:  # a bad setting: say which, without a traceback
    sys.exit(f"Configuration error: {exc}")

from django.conf import settings  # noqa: E402  (after django.setup())
from django.core.management import call_command  # noqa: E402

from core.startup import failures_as_messages  # noqa: E402  (after django.setup())

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Defaults chosen with `make bench` (docs/performance.md: the figures, the machine, the worker models compared).
#
# gevent: a chat spends nearly all its life waiting on the upstream and Redis, a stream for seconds; a greenlet per
# connection holds that wait for a few KiB where a thread worker would hold a thread, so thousands of chats fit in
# one worker and MAX_CHATS_IN_FLIGHT follows memory (settings). bcrypt runs in gevent's thread pool, off the loop
# (core/cooperative.py). gevent alone would let a slow client take its time over a request: this subclass reads each
# request whole under REQUEST_READ_TIMEOUT_SECONDS first (docs/operations.md, Security).
worker_class = "server.worker.GuardedGeventWorker"
# One worker per core with Redis history (more workers than cores only contend for them); locmem history lives
# inside one process, so it needs exactly one worker.
_default_workers = 1 if settings.HISTORY_BACKEND == "locmem" else (os.cpu_count() or 2)
workers = int(os.environ.get("WEB_CONCURRENCY", str(_default_workers)))
# Connections one worker holds at once (streams, slow or idle clients, keep-alive ones); more wait in the listen
# backlog. Each costs a greenlet and a descriptor: the worker raises its open-file limit to match, and stays under it.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "10000"))
backlog = 2048
# A chat may wait LLM_TIMEOUT_SECONDS on the upstream; the worker must outlive that.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", str(int(settings.LLM_TIMEOUT_SECONDS) + 30)))
graceful_timeout = 30
# Longer than a load balancer's idle timeout (AWS ALB and nginx default to 60 s), so the balancer, not gunicorn,
# closes an idle connection and never sends a request on one gunicorn is closing. An idle keep-alive connection
# costs the worker one poller entry.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# Recycling a worker bounds slow leaks and costs little (a worker forks from the loaded master), but locmem history
# lives in the worker, so with locmem a recycle would wipe every conversation: never recycle it. With Redis, a
# recycle every 50,000 requests; the jitter keeps the workers from restarting together.
_default_max_requests = "0" if settings.HISTORY_BACKEND == "locmem" else "50000"
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", _default_max_requests))
max_requests_jitter = max_requests // 10
accesslog = None  # the service logs each request itself, with its request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


# gunicorn's control socket (for `gunicornc`, which this service does not use) defaults to one path per user, so
# two instances on one host would share it.
control_socket_disable = True


def _address_in_use(address: str) -> bool:
    """Whether another process listens on `address` (host:port), checked as gunicorn will bind it."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return False  # a unix socket or fd://: gunicorn reports those itself
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError:
            return True
    return False


def on_starting(server: object) -> None:
    """Refuse to start on a port in use, rename the Redis keys of an older version (`manage.py upgraderediskeys`),
    and do what `manage.py ensureadmin` does: refuse to start without Redis or with an admin on a known default
    password (with DEBUG off); create the default admin when none exists. Then warn, once (here, in the master, not
    in every worker), when GROQ_API_KEY is not set."""
    for address in server.cfg.bind:  # type: ignore[attr-defined]
        if _address_in_use(address):
            sys.exit(f"{address} is in use by another program: set PORT to a free port, e.g. PORT=9000 make run")
    with failures_as_messages(prefix="Configuration error: "):
        call_command("upgraderediskeys", verbosity=0)
        call_command("ensureadmin")
    call_command("checkllm")


def worker_exit(server: object, worker: object) -> None:
    tracing_stop()  # the spans still waiting for their batch are sent before the worker goes


def child_exit(server: object, worker: object) -> None:
    metrics_worker_exited(worker.pid)  # type: ignore[attr-defined]
