"""prometheus_client's multiprocess mode under gunicorn: every worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and `/metrics` adds them up, so a scrape counts every worker's requests, whichever
worker answers it.

prometheus_client reads the variable when it is first imported, so gunicorn.conf.py calls
metrics_dir_prepare() before Django (and anything else) starts. Without gunicorn (runserver, tests) nothing
sets it, and each process keeps its own metrics."""

from __future__ import annotations

import os
from pathlib import Path

from core.server_dirs import server_temp_dir

ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir_prepare() -> str:
    """Uses PROMETHEUS_MULTIPROC_DIR emptied of an earlier run's files, or else a new temporary directory that
    the server removes when it exits."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        # Files of a previous run would add its counts to this one's.
        for stale in path.glob("*.db"):
            stale.unlink()
        return given
    return server_temp_dir(ENV, "chatbot-metrics-")


def metrics_worker_exited(pid: int) -> None:
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
