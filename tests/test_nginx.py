"""deploy/nginx.conf with a real nginx in front of a real gunicorn: streams pass piece by piece, the client's own
address is the one the service logs and throttles, a header the client sends cannot change it, and bodies are
limited as the service limits them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from tests.server import running_server
from tests.support import ALICE_PASSWORD, ROOT, free_port, wait_until_serving

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed: apt-get install nginx (make test installs it when run as root)"
)

# Loopback addresses of the clients: nginx sees them; the service sees nginx, at 127.0.0.1.
CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3"


def _nginx_config(prefix: Path, port: int, upstream_port: int) -> Path:
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", site)
    site, servers = re.subn(r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{upstream_port};", site)
    assert (listens, servers) == (1, 1), "deploy/nginx.conf changed shape: update this test's substitutions"
    (prefix / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/site.conf;
}}
"""
    config = prefix / "nginx.conf"
    config.write_text(main)
    return config


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The URL of nginx in front of gunicorn, and the service's log."""
    prefix = tmp_path_factory.mktemp("nginx")
    log = prefix / "service.log"
    settings = {
        "CLIENT_IP_HEADER": "X-Forwarded-For",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOGIN_MAX_FAILURES_PER_IP": "3",
    }
    with log.open("wb") as output, running_server(log=output, **settings) as service:
        port = free_port()
        config = _nginx_config(prefix, port, int(service.rsplit(":", 1)[1]))
        nginx = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(lambda: httpx.get(f"{url}/health/live", timeout=1).status_code == 200, 10, "nginx")
            yield url, log
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


def _client(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def test_a_streamed_chat_arrives_piece_by_piece(proxied, alice, fake_groq):
    url, _ = proxied
    fake_groq.configure(chunk_delay=0.2, reply="one two three four five")
    with _client(CLIENT) as client:
        login = client.post(f"{url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        arrivals = []
        with client.stream("POST", f"{url}/chat/", json={"message": "hi", "stream": True}, headers=headers) as response:
            for piece in response.iter_text():
                if "event: delta" in piece:
                    arrivals.append(time.monotonic())

    assert response.status_code == HTTPStatus.OK
    assert len(arrivals) >= 4, "the deltas arrived together: nginx buffered the stream"
    assert arrivals[-1] - arrivals[0] >= 0.5


def test_the_service_logs_and_throttles_the_clients_own_address_whatever_it_claims(proxied, alice):
    url, log = proxied
    with _client(CLIENT) as client:
        statuses = [
            client.post(
                f"{url}/admin/login",
                json={"username": f"nobody-{attempt}", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"198.51.100.{attempt}", "X-Request-ID": f"spoofed-{attempt}"},
            ).status_code
            for attempt in range(5)
        ]
    with _client(OTHER_CLIENT) as other:
        elsewhere = other.post(f"{url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})

    # Counted per real address, however the header varied; another client is not held back by it.
    assert statuses[:3] == [HTTPStatus.UNAUTHORIZED] * 3
    assert statuses[3:] == [HTTPStatus.TOO_MANY_REQUESTS] * 2
    assert elsewhere.status_code == HTTPStatus.OK
    lines = [
        line for line in log.read_text().splitlines() if "chatbot.requests" in line and "request_id=spoofed-" in line
    ]
    assert len(lines) == 5
    assert all(line.endswith(f"client={CLIENT}") for line in lines), lines


def test_a_body_over_the_services_limit_is_refused_by_nginx(proxied):
    url, _ = proxied
    response = httpx.post(
        f"{url}/admin/login", content=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert "nginx" in response.text  # refused before it reached the service
