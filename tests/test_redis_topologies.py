"""The helpers that start the topology tests' redis-server processes (tests/redis_topologies.py)."""

from __future__ import annotations

import socket

from tests.redis_topologies import REDIS_SERVER, start_server, stop_nodes
from tests.topology import require_redis_server


def test_a_server_whose_port_was_taken_before_it_bound_it_starts_on_another(tmp_path):
    require_redis_server()
    # Another process took the chosen port between free_port() and redis-server's bind: it exits at once.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        chosen: list[int] = []

        def command(port: int) -> list[str]:
            chosen.append(port)
            bound = taken.getsockname()[1] if len(chosen) == 1 else port
            return [REDIS_SERVER, "--port", str(bound), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]

        node = start_server(tmp_path, command, what="redis-server")
        try:
            assert len(chosen) == 2
            assert node.port == chosen[1]
            assert node.client().ping()
        finally:
            stop_nodes([node])
