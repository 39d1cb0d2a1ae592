"""A limit shared by the workers of one gunicorn server: at most `count` holders at once, each holding a kernel lock
(flock) on one of `count` slot files in HOST_SLOTS_DIR. The kernel releases a process's locks when it dies, so a
worker killed while holding a slot does not keep it.

gunicorn.conf.py calls host_slots_dir_prepare() in the master, before the workers fork and before settings read the
variable. Without gunicorn (runserver, tests) nothing sets it, and the limit holds in each process alone."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from core.server_dirs import server_temp_dir

ENV = "HOST_SLOTS_DIR"
# The slots' use, a bcrypt hash, takes tens to hundreds of milliseconds: a slot freed is taken within a few percent
# of that, and a waiter wakes 200 times a second at most.
POLL_SECONDS = 0.005
# Long enough for another process's waiter to see a freed slot (a poll, and the wait for its GIL).
HANDOFF_SECONDS = 4 * POLL_SECONDS

logger = logging.getLogger(__name__)


def host_slots_dir_prepare() -> str:
    """Uses HOST_SLOTS_DIR, or else a new temporary directory that the server removes when it exits."""
    given = os.environ.get(ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return given
    return server_temp_dir(ENV, "chatbot-slots-")


class HostSlots:
    """At most `count` holders of the slots called `name` at once: among this process's threads, and, given a
    directory, among all the processes that use it."""

    def __init__(self, name: str, count: int, directory: str | None, wait_seconds: float) -> None:
        self.name, self.count, self.directory, self.wait_seconds = name, count, directory, wait_seconds
        # In front of the files, so that at most `count` threads of a process poll them.
        self._threads = threading.BoundedSemaphore(count)
        self._freed_at = 0.0

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """Holds a slot for the block. Yields False, holding only this process's (logged), when no slot of the
        directory came free within `wait_seconds` or the directory cannot be used."""
        with self._threads:
            if self.directory is None:
                yield True
                return
            # A process that has just freed a slot lets the other processes' waiters take it first: otherwise its
            # next thread, already running, would win nearly every time, and theirs would wait out wait_seconds.
            handoff = self._freed_at + HANDOFF_SECONDS - time.monotonic()
            if handoff > 0:
                time.sleep(handoff)
            with self._file_slot(self.directory) as held:
                yield held

    @contextmanager
    def _file_slot(self, directory: str) -> Iterator[bool]:
        descriptors: list[int] = []
        held = False
        try:
            try:
                # Opened by this thread for this use: a flock belongs to the open file description, so a descriptor
                # shared with another thread would let both hold the slot.
                for index in range(self.count):
                    path = Path(directory) / f"{self.name}-{index}.lock"
                    descriptors.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
                held = _lock_one(descriptors, time.monotonic() + self.wait_seconds)
                if not held:
                    logger.warning("no %s slot came free in %s s; going on without one", self.name, self.wait_seconds)
            except OSError as exc:
                logger.warning("%s slots unusable in %s (%s); going on without one", self.name, directory, exc)
            yield held
        finally:
            for descriptor in descriptors:
                with suppress(OSError):
                    os.close(descriptor)  # releases the lock, if this one holds it
            if held:
                self._freed_at = time.monotonic()


def _lock_one(descriptors: list[int], deadline: float) -> bool:
    while True:
        for descriptor in descriptors:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                continue
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
