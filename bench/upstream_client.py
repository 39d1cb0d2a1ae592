"""CPU per upstream call by HTTP client: one non-streamed chat completion from the fake upstream, in one thread,
through httpx, httpx on a urllib3 transport, httpx's own transport layer (an httpcore connection pool, what the
service uses), a urllib3 connection pool and http.client.

    .venv/bin/python -m bench.upstream_client [--calls 1500] [--rounds 3]

Prints the median over the rounds of the thread's CPU time per call, in microseconds."""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpcore
import httpx
import urllib3

from bench.processes import fake_upstream

BODY = {
    "model": "openai/gpt-oss-20b",
    "messages": [{"role": "user", "content": "Hello there, how are you?"}] * 10,
    "temperature": 0.7,
    "max_tokens": 1024,
}
HEADERS = {"Authorization": "Bearer bench-key", "Content-Type": "application/json"}


class Urllib3Transport(httpx.BaseTransport):
    """httpx's client on urllib3's pool: shows whether the cost is httpx's transport or the client around it."""

    def __init__(self) -> None:
        self.pool = urllib3.PoolManager(maxsize=4, retries=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.pool.request(request.method, str(request.url), body=request.read(), headers=request.headers)
        return httpx.Response(answer.status, headers=list(answer.headers.items()), content=answer.data)


def cpu_us_per_call(call: Callable[[], Any], calls: int, rounds: int) -> float:
    for _ in range(100):
        call()
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(calls):
            call()
        samples.append((time.thread_time() - started) / calls * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    payload = json.dumps(BODY).encode()
    with fake_upstream() as fake:
        url = f"{fake.base_url}/chat/completions"
        path = urllib3.util.parse_url(url).request_uri
        plain = httpx.Client(headers=HEADERS)
        on_urllib3 = httpx.Client(headers=HEADERS, transport=Urllib3Transport())
        pool = urllib3.connection_from_url(url, maxsize=4, retries=False)
        core_pool = httpcore.ConnectionPool(max_connections=4)
        connection = http.client.HTTPConnection("127.0.0.1", fake.port)
        core_headers = [(name.encode(), value.encode()) for name, value in HEADERS.items()]

        def through_httpcore() -> Any:
            answer = core_pool.request("POST", url, headers=core_headers, content=json.dumps(BODY).encode())
            return json.loads(answer.content)

        def through_urllib3() -> Any:
            return json.loads(pool.urlopen("POST", path, body=payload, headers=HEADERS).data)

        def through_http_client() -> Any:
            connection.request("POST", path, body=payload, headers=HEADERS)
            return json.loads(connection.getresponse().read())

        clients: dict[str, Callable[[], Any]] = {
            "httpx": lambda: plain.post(url, json=BODY).json(),
            "httpx on a urllib3 transport": lambda: on_urllib3.post(url, json=BODY).json(),
            "httpcore connection pool": through_httpcore,
            "urllib3 connection pool": through_urllib3,
            "http.client": through_http_client,
        }
        for name, call in clients.items():
            print(f"{name:30s} {cpu_us_per_call(call, args.calls, args.rounds):6.0f} µs of CPU per call", flush=True)


if __name__ == "__main__":
    main()
