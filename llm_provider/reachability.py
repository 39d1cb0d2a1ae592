"""What the latest chat in this process learnt about the upstream: reached it, or failed to. The health this
process reports (llm_provider/services.py) follows it at once, instead of waiting for its next probe."""

from __future__ import annotations

import time
from dataclasses import dataclass

from llm_provider.exceptions import LLMError

# The failures that say the upstream itself is down or failing, not that one request was refused.
DOWN_CODES = frozenset({"upstream_unavailable", "upstream_timeout", "upstream_error"})


@dataclass(frozen=True)
class Reachability:
    reached: bool
    error: LLMError | None
    observed_at: float  # Unix time


_latest: Reachability | None = None


def reachability_observe(error: LLMError | None) -> None:
    """Records a chat's upstream call: None when the upstream answered it; its error otherwise (only failures in
    DOWN_CODES count)."""
    global _latest
    if error is None:
        if _latest is None or not _latest.reached:
            _latest = Reachability(True, None, time.time())
    elif error.code in DOWN_CODES:
        _latest = Reachability(False, error, time.time())


def reachability_latest() -> Reachability | None:
    return _latest
