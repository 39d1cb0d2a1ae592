from __future__ import annotations

import pytest


@pytest.fixture(params=["locmem", "redis"])
def history_backend(request, settings) -> str:
    """Runs a test once with each history store."""
    settings.HISTORY_BACKEND = request.param
    return request.param
