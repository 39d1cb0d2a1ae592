"""Directories that gunicorn's master makes before it forks, for its workers to share."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def server_temp_dir(env: str, prefix: str) -> str:
    """A new temporary directory, named in the environment variable `env` for the workers, that the server removes
    when it exits."""
    created = tempfile.mkdtemp(prefix=prefix)
    os.environ[env] = created
    owner = os.getpid()

    def remove() -> None:
        # Workers are forked from the server and inherit this handler; only the server may remove the directory.
        if os.getpid() == owner:
            shutil.rmtree(created, ignore_errors=True)

    atexit.register(remove)
    return created
