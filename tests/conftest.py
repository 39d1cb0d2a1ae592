from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import caches
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from accounts.models import AdminUser
from accounts.services import admin_create
from conversations.stores import locmem_store
from core import store_marker
from core.redis_store import redis_client
from tests.fake_groq import FakeGroq
from tests.support import ALICE_PASSWORD, BOB_PASSWORD, ROOT, SLOW_MACHINE, llm_health_forget, login, redis_keys
from tests.topology import SUITES_ON, Topologies

hypothesis_settings.register_profile("suite", deadline=None, suppress_health_check=SLOW_MACHINE)
hypothesis_settings.load_profile("suite")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-topologies",
        default="",
        help="run the suites that use Redis on one Redis and also on these: cluster, sentinel, or all "
        "(comma-separated; `make test` runs all)",
    )


# Tests that assert how long something takes: `make test` runs them alone, after the others ran in parallel.
TIMED = (
    "tests/test_slow_clients.py",
    "tests/test_faults.py",
    "tests/accounts/test_bcrypt_off_the_loop.py",
    "tests/accounts/test_bcrypt_slots.py",
    "tests/llm_provider/test_client.py",
    "tests/conversations/test_streaming.py::test_the_first_event_arrives_before_the_upstream_finishes",
    "tests/accounts/test_budget_alerts.py::test_a_failing_receiver_gets_the_alert_again_with_backoff",
    "tests/accounts/test_budget_alerts.py::test_a_slow_receiver_does_not_delay_a_chat",
    "tests/browser/test_console.py::test_a_reply_with_html_script_and_javascript_links_runs_nothing",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(TIMED):
            item.add_marker(pytest.mark.timed)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadscope` as tests/scheduling.py shares it out: a unit per module and Redis topology, slowest first."""
    if config.getvalue("dist") != "loadscope":
        return None
    from tests.scheduling import ByModuleAndTopology

    return ByModuleAndTopology(config, log)


def _topologies_asked(config: pytest.Config) -> list[str]:
    asked = [name.strip() for name in config.getoption("--redis-topologies").split(",") if name.strip()]
    if "all" in asked:
        return list(SUITES_ON)
    for name in asked:
        if name not in SUITES_ON:
            raise pytest.UsageError(f"--redis-topologies: no topology {name!r} (choose from {', '.join(SUITES_ON)})")
    return asked


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test of a suite that uses Redis runs once per topology asked for, the topology in its id."""
    if metafunc.definition.get_closest_marker("one_redis"):
        return
    path = metafunc.definition.path.relative_to(ROOT).as_posix()
    also_on = [
        name
        for name in _topologies_asked(metafunc.config)
        if any(path == suite or path.startswith(f"{suite}/") for suite in SUITES_ON[name])
    ]
    if also_on:
        metafunc.parametrize("redis_topology", ["single", *also_on], indirect=True, scope="module")


@pytest.fixture(scope="session")
def redis_topologies() -> Iterator[Topologies]:
    topologies = Topologies()
    yield topologies
    topologies.close()


@pytest.fixture(scope="module", autouse=True)
def redis_topology(request: pytest.FixtureRequest) -> Iterator[str]:
    """The Redis the service runs on: "single" (REDIS_URL), or "cluster" or "sentinel", from the test's parameter
    or its module's `redis_topology` mark. A module runs on one topology at a time: a module-scoped fixture that
    starts a server asks for this one, so that it is started again, on each topology."""
    mark = request.node.get_closest_marker("redis_topology")
    name = getattr(request, "param", None) or (mark.args[0] if mark and mark.args else "single")
    if name == "single":
        yield name
        return
    with request.getfixturevalue("redis_topologies").serving(name):
        yield name


def delete_test_keys() -> None:
    keys = redis_keys()
    if keys:
        redis_client().delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def fake_groq_server() -> Iterator[FakeGroq]:
    """The upstream every test (and every server a test starts) talks to, on the port tests/settings.py chose."""
    with FakeGroq(port=int(os.environ["TEST_FAKE_GROQ_PORT"])) as fake:
        yield fake


@pytest.fixture
def fake_groq(fake_groq_server: FakeGroq) -> FakeGroq:
    return fake_groq_server


@pytest.fixture(autouse=True)
def _no_cached_llm_health(monkeypatch) -> None:
    """Each test's upstream health is asked afresh, of the fake upstream as that test leaves it, and no chat of an
    earlier test counts."""
    llm_health_forget(monkeypatch)
    monkeypatch.setattr(store_marker, "_seen", None)
    monkeypatch.setattr(store_marker, "_lost", None)


@pytest.fixture(autouse=True)
def _clean_state(fake_groq_server: FakeGroq, redis_topology: str) -> Iterator[None]:
    yield
    fake_groq_server.finish()
    fake_groq_server.reset()
    delete_test_keys()
    if settings.HISTORY_BACKEND == "locmem":
        caches["history"].clear()
        locmem_store.cache_clear()  # and with it the store's record of the sessions just cleared


@pytest.fixture
def redis_down(settings) -> None:
    """Points the service at a port where no Redis listens: connections are refused at once."""
    dead = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {**settings.CACHES, "default": dead}


@pytest.fixture
def alice() -> AdminUser:
    return admin_create(username="alice", password=ALICE_PASSWORD)


@pytest.fixture
def bob() -> AdminUser:
    return admin_create(username="bob", password=BOB_PASSWORD)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_tokens(api: APIClient, alice: AdminUser) -> dict[str, str]:
    return login(api, "alice", ALICE_PASSWORD)


@pytest.fixture
def alice_client(alice_tokens: dict[str, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    return client


@pytest.fixture
def bob_client(bob) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(APIClient(), 'bob', BOB_PASSWORD)['access_token']}")
    return client
