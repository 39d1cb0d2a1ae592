"""How late gevent's event loop in this process runs what is due: its lag. A greenlet sleeps a short while, again
and again, and each time measures how much later than asked it ran again, after a turn through the loop's queue of
ready greenlets; a loop that has more ready work than its core can run runs it later and later. The lag reported is
a moving average of the samples, so that one slow request (a large import, a schema built once) does not read as
overload, while a loop that stays late for a second does. Without gevent (tests, runserver) there is no loop to
measure, and the lag is 0."""

from __future__ import annotations

import os
import time

from core.cooperative import gevent_patched

# How often the loop is sampled: often enough that a few hundred ms of overload shows within a sample or two.
SAMPLE_SECONDS = 0.02
# Each sample's weight in the average: a lag that holds for ten samples or so is fully seen.
SAMPLE_WEIGHT = 0.2


class LoopLag:
    def __init__(self) -> None:
        self.average = 0.0  # seconds the samples woke late, on average (SAMPLE_WEIGHT)
        self.last = 0.0  # seconds the latest sample woke late
        self.due = float("inf")  # when the sample now sleeping should wake
        self.pid = 0

    def seconds(self) -> float:
        """The loop's lag now: the samples' average, counting the sample now sleeping as woken already when it is
        overdue by more (a loop stuck behind a long stretch of work shows before the sample wakes)."""
        if self.pid != os.getpid():
            self._start()
        overdue = time.monotonic() - self.due
        return max(self.average, self.average + SAMPLE_WEIGHT * (overdue - self.average))

    def latest_seconds(self) -> float:
        """How late the loop is now, without the average's memory: the latest sample's lag, or the sleeping sample's
        if it is overdue by more. A loop that has just become free reads as free at once."""
        if self.pid != os.getpid():
            self._start()
        return max(self.last, time.monotonic() - self.due)

    def _start(self) -> None:
        self.pid = os.getpid()  # a worker forked from a process that sampled starts its own sampler
        self.average, self.last, self.due = 0.0, 0.0, float("inf")
        if gevent_patched():
            import gevent

            gevent.spawn(self._sample)

    def _sample(self) -> None:
        import gevent

        while True:
            self.due = time.monotonic() + SAMPLE_SECONDS
            time.sleep(SAMPLE_SECONDS)  # gevent's sleep: the greenlet is woken by the loop, when the loop gets to it
            # A timer wakes its greenlet at once, ahead of the greenlets made ready before it: those wait in the loop's
            # queue of callbacks, of which each turn runs 5 ms (the switch interval). A new connection's greenlet and
            # a stream's next piece wait there, behind every other, so the sample waits its turn there too: at 4,000
            # streams the timer alone read 20-40 ms while new connections waited 100 ms more (docs/performance.md).
            gevent.sleep(0)
            self.last = max(0.0, time.monotonic() - self.due)
            self.average += SAMPLE_WEIGHT * (self.last - self.average)


loop_lag = LoopLag()
