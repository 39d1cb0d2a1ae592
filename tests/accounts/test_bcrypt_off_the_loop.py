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
        login = threading.Thread(
            target=lambda: statuses.append(
                httpx.post(
                    f"{url}/admin/login", json={"username": "nobody", "password": "wrong-pw"}, timeout=60
                ).status_code
            )
        )
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
    assert max(samples) < 0.5, samples
