"""CPU per upstream call by HTTP client: one non-streamed chat completion from the fake upstream, in one thread,
through httpx, httpx on a urllib3 transport, httpx's own transport layer (an httpcore connection pool), the
service's pool of httpcore connections (llm_provider/connections.py), a urllib3 connection pool and http.client.

    .venv/bin/python -m bench.upstream_client [--calls 1500] [--rounds 3] [--idle 200]

`--idle N` first opens N connections in each pool (N calls at once, the fake answering after a second), which then
stay idle beside the one the measured calls use, as after a burst of chats in flight. Prints the median over the
rounds of the thread's CPU time per call, in microseconds."""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpcore
import httpx
import urllib3

from bench.processes import fake_upstream
from llm_provider.connections import UpstreamConnections

BODY = {
    "model": "openai/gpt-oss-20b",
    "messages": [{"role": "user", "content": "Hello there, how are you?"}] * 10,
    "temperature": 0.7,
    "max_tokens": 1024,
}
HEADERS = {"Authorization": "Bearer bench-key", "Content-Type": "application/json"}
TIMEOUT = {"timeout": {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}}


class Urllib3Transport(httpx.BaseTransport):
    """httpx's client on urllib3's pool: shows whether the cost is httpx's transport or the client around it."""

    def __init__(self, maxsize: int) -> None:
        self.pool = urllib3.PoolManager(maxsize=maxsize, retries=False)

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


def fill(call: Callable[[], Any], connections: int, configure: Callable[[float], None]) -> None:
    """Leaves `connections` idle connections in the pool behind `call`: as many calls at once, answered slowly."""
    if connections < 2:
        return
    configure(1.0)
    threads = [threading.Thread(target=call) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    configure(0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=0, help="idle connections each pool holds (0: one)")
    args = parser.parse_args()
    size = max(4, args.idle)
    payload = json.dumps(BODY).encode()
    with fake_upstream() as fake:
        url = f"{fake.base_url}/chat/completions"
        path = urllib3.util.parse_url(url).request_uri
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=None)
        plain = httpx.Client(headers=HEADERS, limits=limits)
        on_urllib3 = httpx.Client(headers=HEADERS, transport=Urllib3Transport(size))
        core_pool = httpcore.ConnectionPool(max_connections=size)
        service_pool = UpstreamConnections(httpcore.ConnectionPool(), size)
        pool = urllib3.connection_from_url(url, maxsize=size, block=True, retries=False)
        connection = http.client.HTTPConnection("127.0.0.1", fake.port)
        core_headers = [(name.encode(), value.encode()) for name, value in HEADERS.items()]
        host = f"127.0.0.1:{fake.port}".encode()

        def through_httpcore() -> Any:
            answer = core_pool.request("POST", url, headers=core_headers, content=json.dumps(BODY).encode())
            return json.loads(answer.content)

        def through_service_pool() -> Any:
            content = json.dumps(BODY).encode()
            headers = [(b"Host", host), *core_headers, (b"Content-Length", str(len(content)).encode())]
            request = httpcore.Request("POST", url, headers=headers, content=content, extensions=TIMEOUT)
            answer = service_pool.handle_request(request)
            try:
                return json.loads(answer.read())
            finally:
                answer.close()

        def through_urllib3() -> Any:
            return json.loads(pool.urlopen("POST", path, body=payload, headers=HEADERS).data)

        def through_http_client() -> Any:
            connection.request("POST", path, body=payload, headers=HEADERS)
            return json.loads(connection.getresponse().read())

        def configure(latency: float) -> None:
            httpx.post(f"http://127.0.0.1:{fake.port}/_fake/config", json={"latency": latency})

        clients: dict[str, Callable[[], Any]] = {
            "httpx": lambda: plain.post(url, json=BODY).json(),
            "httpx on a urllib3 transport": lambda: on_urllib3.post(url, json=BODY).json(),
            "httpcore connection pool": through_httpcore,
            "httpcore, the service's pool": through_service_pool,
            "urllib3 connection pool": through_urllib3,
            "http.client": through_http_client,
        }
        for name, call in clients.items():
            if name != "http.client":  # one connection, no pool
                fill(call, args.idle, configure)
            print(f"{name:30s} {cpu_us_per_call(call, args.calls, args.rounds):6.0f} µs of CPU per call", flush=True)


if __name__ == "__main__":
    main()
