"""Failover under load: a steady chat load on a gunicorn instance while the Redis primary it uses is killed with
SIGKILL, on a real Redis Cluster (the primary REDIS_URL names) and on a real Sentinel setup (the primary the
Sentinels name). While no primary serves, chats answer 503 with Retry-After, never 500; once the replica is
promoted the service answers again by itself, within 10 s, without a restart; and no chat it answered 200 is
lost: a turn is answered only once the replica has it (WAIT)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from http import HTTPStatus

import httpx
import pytest

from accounts.services import admin_create
from core.redis_store import redis_admin_key, redis_client, redis_ping
from tests.failover_load import ChatLoad, failover_times
from tests.redis_topologies import redis_cluster, redis_sentinel
from tests.server import running_server
from tests.support import chat, login, login_headers, wait_until_serving
from tests.topology import (
    cluster_env,
    forget_cluster_clients,
    require_redis_server,
    sentinel_env,
    this_process_on_cluster,
    this_process_on_sentinel,
)

pytestmark = pytest.mark.redis_topology

PASSWORD = "failover-password-1"
# Sessions enough that MAX_SESSIONS never refuses one during the test.
ROOMY = {"MAX_SESSIONS": "100000", "MAX_SESSIONS_PER_ADMIN": "10000"}
RECOVERY_SECONDS = 10


def assert_failover_handled(load: ChatLoad, url: str, killed_at: float, promoted_at: float):
    def workers_answered(answers) -> set[int]:
        return {a.worker for a in answers if a.at > promoted_at and a.status == HTTPStatus.OK}

    # Every session, the ones whose turn failed mid-failover included (their lock given back once Redis answers).
    load.wait_for_answers(lambda answers: len(workers_answered(answers)) == load.sessions, 30, "every session answered")
    all_recovered_at = time.monotonic()
    load.wait_for_answers(lambda answers: answers[-1].at > all_recovered_at + 1, 10, "a second more of load")
    load.stop()

    answers = load.snapshot()
    times = failover_times(answers, killed_at, promoted_at)
    print(times.summary())
    statuses = {a.status for a in answers}
    assert statuses <= {HTTPStatus.OK, HTTPStatus.SERVICE_UNAVAILABLE}, statuses  # never a 500, never a drop
    refused = [a for a in answers if a.status == HTTPStatus.SERVICE_UNAVAILABLE]
    assert refused, "the outage was not seen: the primary that was killed served none of these chats"
    assert all(a.retry_after for a in refused)
    assert times.recovered - times.promoted <= RECOVERY_SECONDS, times.summary()
    assert all_recovered_at - promoted_at <= RECOVERY_SECONDS, "a session stayed locked after the failover"

    # No turn answered 200 is missing from its session, read back after the failover.
    for headers, session, acknowledged in load.acknowledged():
        stored = httpx.get(f"{url}/chat/sessions/{session}", headers=headers, timeout=30)
        assert stored.status_code == HTTPStatus.OK, stored.text
        users = {m["content"] for m in stored.json()["messages"] if m["role"] == "user"}
        assert set(acknowledged) <= users, sorted(set(acknowledged) - users)


def test_a_cluster_primary_killed_under_load(settings, fake_groq):
    require_redis_server()
    fake_groq.configure(latency=0.05)  # most turns are waiting for the model when the primary dies
    with redis_cluster() as cluster:
        primary = cluster.nodes[0]
        assert cluster.role(primary) == "master"
        (replica,) = cluster.replicas_of(primary)
        with this_process_on_cluster(settings, cluster, node_index=0):
            # Two admins: one whose slot (its logins, sessions, limits) is on the primary that will be killed, one
            # elsewhere (which sees the moment the cluster marks that primary failed and refuses every command).
            client = redis_client()
            on_primary, elsewhere = None, None
            for number in range(200):
                admin = admin_create(username=f"failover{number}", password=PASSWORD)
                if client.get_node_from_key(redis_admin_key(admin.id, "admin")).port == primary.port:
                    on_primary = on_primary or admin
                else:
                    elsewhere = elsewhere or admin
                if on_primary and elsewhere:
                    break
            with running_server(**cluster_env(cluster, node_index=0), **ROOMY) as url:
                headers = [login_headers(url, admin.username, PASSWORD) for admin in (on_primary, elsewhere)]
                with ChatLoad(url, headers) as load:
                    load.wait_for_answers(lambda answers: len(answers) >= 40, 30, "a steady load")

                    killed_at = time.monotonic()
                    primary.kill()
                    wait_until_serving(lambda: cluster.role(replica) == "master", 30, "the replica's promotion")
                    promoted_at = time.monotonic()

                    assert_failover_handled(load, url, killed_at, promoted_at)

            # A client made now from REDIS_URL, which names the dead node, starts from the nodes this process knew.
            forget_cluster_clients()
            assert redis_ping()


def test_a_sentinel_primary_killed_under_load(fake_groq):
    require_redis_server()
    fake_groq.configure(latency=0.05)  # most turns are waiting for the model when the primary dies
    with redis_sentinel() as setup, running_server(**sentinel_env(setup), **ROOMY) as url:
        headers = login_headers(url, "admin", "a-strong-default-password")  # the default admin, made at start
        with ChatLoad(url, [headers]) as load:
            load.wait_for_answers(lambda answers: len(answers) >= 40, 30, "a steady load")

            killed_at = time.monotonic()
            setup.primary.kill()
            wait_until_serving(
                lambda: setup.current_primary_port() == setup.replica.port, 30, "the Sentinels' failover"
            )
            promoted_at = time.monotonic()

            assert_failover_handled(load, url, killed_at, promoted_at)


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_a_turn_is_answered_only_once_a_replica_has_it(topology, settings, api, fake_groq):
    require_redis_server()
    with ExitStack() as stack:
        if topology == "cluster":
            cluster = stack.enter_context(redis_cluster())
            stack.enter_context(this_process_on_cluster(settings, cluster))
            admin = admin_create(username="alice", password=PASSWORD)
            port = redis_client().get_node_from_key(redis_admin_key(admin.id, "admin")).port
            (replica,) = cluster.replicas_of(next(node for node in cluster.nodes if node.port == port))
        else:
            setup = stack.enter_context(redis_sentinel())
            stack.enter_context(this_process_on_sentinel(settings, setup))
            admin = admin_create(username="alice", password=PASSWORD)
            replica = setup.replica
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {login(api, 'alice', PASSWORD)['access_token']}")
        assert chat(api, "first", "s1").status_code == HTTPStatus.OK

        replica.pause()  # connected, but it confirms nothing
        try:
            unconfirmed = chat(api, "second", "s1")
        finally:
            replica.resume()

        assert unconfirmed.status_code == HTTPStatus.SERVICE_UNAVAILABLE, unconfirmed.content
        assert unconfirmed.json()["code"] == "redis_unavailable"
        assert unconfirmed.headers["Retry-After"]
        assert chat(api, "third", "s1").status_code == HTTPStatus.OK
