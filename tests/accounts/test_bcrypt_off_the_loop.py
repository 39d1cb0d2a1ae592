"""Under gunicorn's gevent worker every request of a worker shares one thread: a login's bcrypt runs in gevent's
thread pool, so the worker's other requests are answered while it hashes."""

from __future__ import annotations

import threading
import time
from http import HTTPStatus

import httpx

from tests.server import running_server


def test_a_login_hashing_does_not_stall_the_other_requests_of_its_worker():
    # An unknown username costs a check against a dummy hash made at BCRYPT_ROUNDS (two hashes of about a second
    # each at 14 rounds): on the event loop, every other request of the worker would wait for them.
    with running_server(WEB_CONCURRENCY="1", BCRYPT_ROUNDS="14") as url:
        statuses: list[int] = []
        took: list[float] = []

        def log_in() -> None:
            started = time.monotonic()
            body = {"username": "nobody", "password": "wrong-pw"}
            statuses.append(httpx.post(f"{url}/admin/login", json=body, timeout=60).status_code)
            took.append(time.monotonic() - started)

        login = threading.Thread(target=log_in)
        login.start()
        samples = []
        while login.is_alive() and len(samples) < 200:
            started = time.monotonic()
            assert httpx.get(f"{url}/health/live", timeout=10).status_code == HTTPStatus.OK
            samples.append(time.monotonic() - started)
            time.sleep(0.05)
        login.join()

    assert statuses == [HTTPStatus.UNAUTHORIZED]
    assert len(samples) > 5  # the login took a while: the probes ran beside its hashes
    # On the loop, a probe that came during a hash would wait for its end: about half the login. Measured against the
    # login, as a loaded machine slows both alike.
    assert max(samples) < took[0] / 4, (took, samples)
