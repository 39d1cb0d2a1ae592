"""gevent in the workers: how the process is patched (gevent_patch_all), and work that holds a core for a long
stretch without yielding (bcrypt), run where it stalls no other request.

Under gunicorn's gevent worker every request of a worker shares one thread: a 250 ms hash run in it would stall
them all, so it runs in gevent's thread pool, and the greenlet waits for it. Without gevent (tests, runserver) each
request has its own thread already, and the work runs in it. Apart from the patching, gevent is looked up only in a
process it has patched, so nothing here imports it otherwise."""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def gevent_patch_all() -> None:
    """gevent's monkey-patching, as gunicorn.conf.py does it for the workers (gunicorn patches again in each worker,
    with the same result): all of it but `select` and `selectors`. The libraries call those only to ask whether a
    pooled connection has data, with a timeout of 0 (redis-py on every command, httpcore on every reuse): the
    system's poll answers that at once, where gevent's waits a whole turn of the event loop, behind every other
    request's work. Nothing in a worker waits in them with a timeout."""
    import gevent
    from gevent import events, monkey

    # A greenlet is spawned for every connection and every stream; gevent would record for each the greenlet and
    # the stack that spawned it (for its debugging reports), which costs each spawn and leaves the collector a
    # dozen more young objects per greenlet alive. Nothing here reads them.
    gevent.config.track_greenlet_tree = False
    if _keep_select not in events.subscribers:
        events.subscribers.append(_keep_select)
    monkey.patch_all()


def _keep_select(event: object) -> None:
    from gevent import events

    if isinstance(event, events.GeventWillPatchModuleEvent) and event.module_name in ("select", "selectors"):
        raise events.DoNotPatch()


def gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def off_the_loop(work: Callable[[], T]) -> T:
    """`work()`, in gevent's thread pool when this process runs gevent (bcrypt releases the GIL meanwhile)."""
    if not gevent_patched():
        return work()
    from gevent import get_hub

    return get_hub().threadpool.apply(work)


def run_beside(work: Callable[[], object]) -> Callable[[], None]:
    """Starts `work()` beside the caller and returns what stops it early: under gevent, a greenlet that a stop
    interrupts where it waits (a read from the upstream raises GreenletExit there, so the request is closed at once);
    otherwise a daemon thread, which a stop cannot interrupt (it ends at its next step). `work` runs in a copy of
    the caller's context variables (the request's trace, for one)."""
    context = contextvars.copy_context()
    if gevent_patched():
        import gevent

        greenlet = gevent.spawn(context.run, work)
        return lambda: greenlet.kill(block=False)
    threading.Thread(target=context.run, args=(work,), name="beside", daemon=True).start()
    return lambda: None
