"""The process's clients, shared by its threads: one per configuration."""

from __future__ import annotations

import os
import threading

from .client import ChatClient, LLMConfig

_clients: dict[tuple[int, LLMConfig], ChatClient] = {}
_clients_lock = threading.Lock()


def get_client(config: LLMConfig) -> ChatClient:
    """Return the process's client for `config`; a forked worker gets its own (sockets must not be shared)."""
    key = (os.getpid(), config)
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        if key not in _clients:
            for stale in [k for k in _clients if k[0] != key[0]]:
                # The parent's connections belong to the parent: forget them without closing.
                del _clients[stale]
            _clients[key] = ChatClient(config)
        return _clients[key]
