"""The process's clients, shared by its threads: one set per configuration, spread over a few shards."""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import replace

from .client import ChatClient, LLMConfig

# httpcore's pool walks all of its connections under one lock on every request and every response, so a single
# pool shared by all of a worker's threads serialises them, most threads waiting on that lock. Threads therefore
# spread over a few clients, each with its share of LLM_MAX_CONNECTIONS; a thread keeps its client, so its
# connections stay warm.
CLIENT_SHARDS = 16

_clients: dict[tuple[int, LLMConfig], list[ChatClient | None]] = {}
_clients_lock = threading.Lock()
_thread_shard = threading.local()
_next_shard = itertools.count()


def get_client(config: LLMConfig) -> ChatClient:
    """Return this thread's share of the process's clients for `config`; a forked worker gets its own (sockets must
    not be shared)."""
    shard = getattr(_thread_shard, "index", None)
    if shard is None:
        shard = _thread_shard.index = next(_next_shard) % CLIENT_SHARDS
    key = (os.getpid(), config)
    with _clients_lock:
        clients = _clients.get(key)
        if clients is None:
            for stale in [k for k in _clients if k[0] != key[0]]:
                # The parent's connections belong to the parent: forget them without closing.
                del _clients[stale]
            clients = _clients[key] = [None] * CLIENT_SHARDS
        client = clients[shard]
        if client is None:
            share = max(1, -(-config.max_connections // CLIENT_SHARDS))
            client = clients[shard] = ChatClient(replace(config, max_connections=share))
        return client
