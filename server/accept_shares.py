"""How many client connections each worker holds, in memory the workers share, so that a worker holding more than
another that keeps up lets that one take the next connection.

Every worker's loop is woken by a new connection on the listener they share, but the worker that is running already
accepts again before another is scheduled: a burst of keep-alive clients connecting at once (a load balancer, a
client's pool) landed mostly on one worker (9/23 and 4/28 of 32, 15/113 of 128: docs/performance.md, "Accepting
connections while the loop is busy"), and stayed there for as long as they were connected. The master makes the
memory before it forks the workers; each worker writes its count, and when it last wrote, into its slot every
PUBLISH_SECONDS while its loop keeps up. A count older than FRESH_SECONDS is of a worker that is late, stopping or
gone, and is not counted; a worker that is late takes its share of the listener's queue instead (server/worker.py).

A worker also writes its count, without the time, each time it asks whether it holds more than another (as it is
about to accept): a count read by the others is then never more than one connection below the worker's own (it
accepts one at a time while it keeps up), and two workers cannot both hold more than the other. With counts up to
PUBLISH_SECONDS old, both did at times and paused together, each taking one connection per ACCEPT_PAUSES_SECONDS:
2,000 slow clients connecting within 2 s left fresh probes waiting 2-4.5 s in the listener's queue
(bench/slow_clients.py; at most 98-186 ms with the counts written so)."""

from __future__ import annotations

import mmap
import struct
import time

# Slots for the workers alive at once, each at its spawn's age modulo SLOTS: gunicorn replaces a worker with a new
# one, of the next age, so two workers share a slot only when one outlives 64 spawns of the others.
SLOTS = 64
_SLOT = struct.Struct("qq")  # when written (time.monotonic_ns, the same clock in every process), connections
_CONNECTIONS = struct.Struct("q")  # a slot's last field, written alone
PUBLISH_SECONDS = 0.02
# Written within this long: the worker's loop keeps up (runs its ready greenlets under 20 ms late, as
# server/worker.py's ACCEPT_MANY_AFTER_LAG_SECONDS has it).
FRESH_SECONDS = 0.05
# A worker lets another take a connection while it holds more than the other's count plus this.
MARGIN = 1


class AcceptShares:
    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, SLOTS * _SLOT.size)  # anonymous and shared: the forked workers see one memory

    def publish(self, slot: int, connections: int) -> None:
        _SLOT.pack_into(self.memory, (slot % SLOTS) * _SLOT.size, time.monotonic_ns(), connections)

    def withdraw(self, slot: int) -> None:
        """This worker takes no more connections (it is stopping): the others stop counting on it."""
        _SLOT.pack_into(self.memory, (slot % SLOTS) * _SLOT.size, 0, 0)

    def over_share(self, slot: int, connections: int) -> bool:
        """Whether a worker holding `connections` holds more than another worker that keeps up (plus MARGIN). Its
        count is written first (not when it was written, which says whether its loop keeps up)."""
        mine = slot % SLOTS
        _CONNECTIONS.pack_into(self.memory, (mine + 1) * _SLOT.size - _CONNECTIONS.size, connections)
        fresh_since = time.monotonic_ns() - int(FRESH_SECONDS * 1e9)
        for other in range(SLOTS):
            written, held = _SLOT.unpack_from(self.memory, other * _SLOT.size)
            if other != mine and written >= fresh_since and connections > held + MARGIN:
                return True
        return False
