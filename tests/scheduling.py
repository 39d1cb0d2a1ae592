"""How `make test` shares the tests among its pytest-xdist workers (`--dist loadscope`, tests/conftest.py).

xdist's loadscope keeps each module in one worker, so that its module-scoped servers start once there, and hands
out the modules with the most tests first. Two things make that slow here:

- a suite that uses Redis runs once per topology (single, cluster, sentinel), each run starting its own module
  servers anyway: one module's three runs are three units of work, not one, so they can run in three workers;
- the test count is a poor guess of a unit's time (some modules start gunicorn instances and Redis nodes, a few
  tests take half a minute): the units known to be slow go first, so that none starts last and runs alone.
"""

from __future__ import annotations

import re
from typing import Any

from xdist.scheduler import LoadScopeScheduling

from tests.topology import SUITES_ON

# Seconds a unit took (one module on one topology), from `pytest --durations` on a loaded 2-core machine; only the
# slowest are listed. Any other unit counts a second a test. Stale figures only make the order a little worse.
KNOWN_SECONDS = {
    "tests/accounts/test_budget_alerts.py": 60,
    "tests/accounts/test_tokens_per_minute_scale_out.py": 60,
    "tests/conversations/test_budgets.py": 50,
    "tests/conversations/test_idempotency.py": 50,
    "tests/test_redis_failover.py": 60,
    "tests/test_redis_topologies_scale_out.py": 60,
}
TOPOLOGY_IN_ID = re.compile(r"[\[-](single|cluster|sentinel)[\]-]")


def _topology_suite(module: str) -> bool:
    return any(module == suite or module.startswith(f"{suite}/") for suites in SUITES_ON.values() for suite in suites)


class ByModuleAndTopology(LoadScopeScheduling):
    """loadscope with a unit per module and topology, the slowest units first."""

    def _split_scope(self, nodeid: str) -> str:
        scope = super()._split_scope(nodeid)
        module = scope.split("::", 1)[0]
        found = TOPOLOGY_IN_ID.search(nodeid[len(scope) :])
        if found and _topology_suite(module):
            return f"{scope}::{found.group(1)}"
        return scope

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self._ordered = False

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:  # the first unit handed out: the queue is complete, put it in order
            self._ordered = True

            def cost(item: tuple[str, dict[str, bool]]) -> float:
                scope, tests = item
                return max(len(tests), KNOWN_SECONDS.get(scope.split("::", 1)[0], 0))

            units = sorted(self.workqueue.items(), key=cost, reverse=True)
            self.workqueue.clear()
            self.workqueue.update(units)
        super()._assign_work_unit(node)
