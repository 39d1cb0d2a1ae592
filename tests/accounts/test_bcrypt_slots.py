"""BCRYPT_MAX_CONCURRENT across processes: separate processes sharing a slot directory never hash at once, a
process killed while holding a slot does not keep it, and a gunicorn server's workers wait for a slot held
elsewhere, for a bounded time."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from accounts.passwords import HOST_SLOT_WAIT_SECONDS
from core.host_slots import HostSlots
from tests.server import running_server
from tests.support import ROOT

# Each process waits until `start_at` (CLOCK_MONOTONIC is one clock for the whole machine), then two threads hash
# three times each; it prints when each hash ran, as seen from inside its slot.
HASHER = """
import json, sys, threading, time
import bcrypt
from core.host_slots import HostSlots

directory, count, start_at = sys.argv[1] or None, int(sys.argv[2]), float(sys.argv[3])
slots = HostSlots("bcrypt", count, directory, wait_seconds=30)
spans = []

def hash_three_times():
    for _ in range(3):
        with slots.hold() as held:
            started = time.monotonic()
            bcrypt.hashpw(b"a password", bcrypt.gensalt(rounds=10))
            spans.append((started, time.monotonic(), held))

time.sleep(max(0.0, start_at - time.monotonic()))
threads = [threading.Thread(target=hash_three_times) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(spans))
"""

# Takes the slot, says so, and hashes in it until killed.
HOLDER = """
import sys
import bcrypt
from core.host_slots import HostSlots

with HostSlots("bcrypt", 1, sys.argv[1], wait_seconds=5).hold() as held:
    print(held, flush=True)
    while True:
        bcrypt.hashpw(b"a password", bcrypt.gensalt(rounds=12))
"""


def _hash_in_processes(directory: Path | None, count: int, processes: int = 3) -> list[tuple[float, float, bool]]:
    start_at = str(time.monotonic() + 1.5)  # after every interpreter has started
    args = [str(directory or ""), str(count), start_at]
    running = [
        subprocess.Popen([sys.executable, "-c", HASHER, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    outputs = [process.communicate(timeout=60)[0] for process in running]
    assert [process.returncode for process in running] == [0] * processes
    return [tuple(span) for output in outputs for span in json.loads(output)]


def _most_at_once(spans: list[tuple[float, float, bool]]) -> int:
    # At equal times an end comes before a start: a hash that starts as another ends does not overlap it.
    events = sorted([(start, 1) for start, _, _ in spans] + [(end, -1) for _, end, _ in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize("count", [1, 2])
def test_processes_sharing_a_slot_directory_never_run_more_hashes_at_once_than_its_slots(tmp_path, count):
    spans = _hash_in_processes(tmp_path, count)

    assert len(spans) == 3 * 2 * 3
    assert all(held for _, _, held in spans)
    assert _most_at_once(spans) <= count


def test_without_a_directory_each_process_has_a_limit_of_its_own():
    # The check above can fail: the same processes, each limited alone, do overlap.
    assert _most_at_once(_hash_in_processes(None, 1)) > 1


def test_a_process_killed_while_holding_a_slot_does_not_keep_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "True"  # type: ignore[union-attr]
        with HostSlots("bcrypt", 1, str(tmp_path), wait_seconds=0.2).hold() as held:
            assert not held  # the holder has it

        holder.kill()
        holder.wait(timeout=10)
        started = time.monotonic()
        with HostSlots("bcrypt", 1, str(tmp_path), wait_seconds=5).hold() as held:
            assert held
        assert time.monotonic() - started < 1
    finally:
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()  # type: ignore[union-attr]


def test_the_directory_a_server_creates_is_removed_when_the_server_exits_not_when_a_worker_does():
    # The forked child exits as a gunicorn worker does, running the atexit handlers it inherited.
    code = (
        "import os\n"
        "from core.host_slots import host_slots_dir_prepare\n"
        "directory = host_slots_dir_prepare()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    raise SystemExit(0)\n"
        "os.waitpid(child, 0)\n"
        "print(directory, os.path.isdir(directory))\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "HOST_SLOTS_DIR"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)

    directory, existed_after_the_worker = result.stdout.split()
    assert result.returncode == 0, result.stderr
    assert existed_after_the_worker == "True"
    assert not Path(directory).exists()


@contextmanager
def _slot_held_elsewhere(directory: Path) -> Iterator[int]:
    descriptor = os.open(directory / "bcrypt-0.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield descriptor
    finally:
        os.close(descriptor)


def _timed_bad_login(url: str) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.post(f"{url}/admin/login", json={"username": "nobody", "password": "wrong-password"}, timeout=30)
    return response.status_code, time.monotonic() - started


def test_a_server_s_logins_wait_for_a_slot_held_by_another_process_for_a_bounded_time(tmp_path):
    directory = tmp_path / "slots"  # the server creates it
    with running_server(HISTORY_BACKEND="redis", WEB_CONCURRENCY="2", HOST_SLOTS_DIR=str(directory)) as url:
        status, _ = _timed_bad_login(url)  # an unknown username costs a bcrypt check too
        assert status == HTTPStatus.UNAUTHORIZED
        assert (directory / "bcrypt-0.lock").exists()

        with _slot_held_elsewhere(directory) as descriptor:
            freed = threading.Timer(0.5, fcntl.flock, [descriptor, fcntl.LOCK_UN])
            freed.start()
            status, waited = _timed_bad_login(url)
            freed.join()
        assert status == HTTPStatus.UNAUTHORIZED
        assert 0.5 <= waited < HOST_SLOT_WAIT_SECONDS

        with _slot_held_elsewhere(directory):
            status, waited = _timed_bad_login(url)
        # Never freed: the login waits its bounded time, then is answered as usual.
        assert status == HTTPStatus.UNAUTHORIZED
        assert HOST_SLOT_WAIT_SECONDS <= waited < HOST_SLOT_WAIT_SECONDS + 3
