"""gunicorn settings for `make run` and the Docker image. Every value can be overridden from the environment."""

from __future__ import annotations

import os
import sys

import django

from chatbot_project.metrics_multiprocess import metrics_dir_prepare, metrics_worker_exited

# Before anything imports prometheus_client: the workers' metrics add up in one directory.
metrics_dir_prepare()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_project.settings")
try:
    django.setup()
except Exception as exc:  # a bad setting: say which, without a traceback
    sys.exit(f"Configuration error: {exc}")

from django.conf import settings

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
# locmem history lives inside one process, so it needs exactly one worker; Redis history can use several.
workers = int(os.environ.get("WEB_CONCURRENCY", "1" if settings.HISTORY_BACKEND == "locmem" else "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# A chat may wait LLM_TIMEOUT_SECONDS on the upstream; the worker must outlive that.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", str(int(settings.LLM_TIMEOUT_SECONDS) + 30)))
graceful_timeout = 30
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = max_requests // 10
accesslog = None  # the service logs each request itself, with its request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def on_starting(server: object) -> None:
    """Refuse to start without Redis, and create the default admin when none exists."""
    from accounts.exceptions import WeakDefaultPassword
    from accounts.services import admin_ensure_default
    from chatbot_project.startup import redis_unreachable_message

    problem = redis_unreachable_message()
    if problem:
        sys.exit(problem)
    try:
        admin_ensure_default()
    except WeakDefaultPassword as exc:
        sys.exit(f"Configuration error: {exc.detail}")


def child_exit(server: object, worker: object) -> None:
    metrics_worker_exited(worker.pid)  # type: ignore[attr-defined]
