"""Under gunicorn, a stream whose client leaves gives its upstream request up as soon as the service notices (its
next write: a keep-alive comment here), not when the upstream next sends something."""

from __future__ import annotations

from http import HTTPStatus

import httpx

from tests.server import running_server
from tests.support import ALICE_PASSWORD, wait_for


def test_a_stream_left_by_its_client_closes_its_upstream_request_at_once(alice, fake_groq):
    # The upstream sends a word every 30 s; the service writes a keep-alive comment every 0.2 s.
    fake_groq.configure(chunk_delay=30, reply="slow words", reasoning=True)  # reasoning first, at once
    with running_server(WEB_CONCURRENCY="1", STREAM_KEEPALIVE_SECONDS="0.2") as url, httpx.Client(timeout=10) as client:
        login = {"username": "alice", "password": ALICE_PASSWORD}
        headers = {"Authorization": f"Bearer {client.post(f'{url}/admin/login', json=login).json()['access_token']}"}
        with client.stream("POST", f"{url}/chat/", json={"message": "hi", "stream": True}, headers=headers) as held:
            assert held.status_code == HTTPStatus.OK
            wait_for(lambda: fake_groq.in_flight == 1)
        # The client has left: the upstream request is closed long before the upstream's next word.
        wait_for(lambda: fake_groq.in_flight == 0, timeout=15)  # the next word would come in 30 s
        assert fake_groq.disconnects == 1
