"""How `make test` shares the tests among its pytest-xdist workers (`--dist loadscope`, tests/conftest.py).

xdist's loadscope keeps each module in one worker, so that its module-scoped servers start once there, and hands
out the modules with the most tests first. That made one worker run long after the others:

- a suite that uses Redis runs once per topology (single, cluster, sentinel), each run starting its own module
  servers anyway: one module's three runs are three units of work here, which may go to three workers;
- a module of SPREAD (each of its tests starts its own processes, and it has no module-scoped fixture) is a unit
  per test;
- the test count is a poor guess of a unit's time: the units go out slowest first, by SECONDS (a test's time on
  a 2-core machine, for the slow ones; any other test counts DEFAULT_SECONDS). Stale figures only make the order
  a little worse; refresh them from `pytest --durations` when a slow test is added.
"""

from __future__ import annotations

import re
from typing import Any

from xdist.scheduler import LoadScopeScheduling

from tests.topology import SUITES_ON

SPREAD = {
    "tests/accounts/test_audit.py",
    "tests/accounts/test_budget_alerts.py",
    "tests/accounts/test_tokens_per_minute_scale_out.py",
    "tests/conversations/test_budget_worst_case.py",
    "tests/conversations/test_budgets.py",
    "tests/conversations/test_costs.py",
    "tests/test_debug_mode.py",
    "tests/test_failure_messages.py",
    "tests/test_llm_not_configured.py",
    "tests/test_metrics.py",
    "tests/test_weak_secrets.py",
}
DEFAULT_SECONDS = 0.3
# Seconds of a test (each of its parameters), under tests/.
SECONDS = {
    "accounts/test_tokens_per_minute_scale_out.py::test_fifty_concurrent_requests_on_two_instances_never_pass_a_tokens_per_minute_limit": 17,  # noqa: E501
    "llm_provider/test_health_follows_chats.py::test_every_worker_and_instance_reports_what_one_chat_found": 16,
    "accounts/test_audit.py::test_a_flood_of_failed_logins_is_bounded_and_keeps_what_admins_did": 15,
    "conversations/test_budgets.py::test_fifty_concurrent_requests_on_two_instances_never_overspend": 13,
    "conversations/test_costs.py::test_fifty_concurrent_requests_on_two_instances_never_overspend_dollars": 12,
    "accounts/test_attacks.py::test_a_login_in_flight_during_a_revocation_gets_no_live_token": 12,
    "test_tracing.py::test_a_server_exports_its_traces_over_otlp_http": 12,
    "conversations/test_budget_worst_case.py::test_sixteen_concurrent_requests_with_tools_never_end_above_the_budget": 11,  # noqa: E501
    "accounts/test_attacks.py::test_a_throttled_address_spraying_usernames_adds_no_throttle_keys": 11,
    "test_failure_messages.py::test_a_command_with_redis_url_not_a_redis_url_says_so": 10,
    "test_metrics.py::test_counts_add_up_across_gunicorn_workers": 10,
    "accounts/test_budget_alerts.py::test_two_instances_send_each_threshold_once_for_concurrent_chats": 9,
    "test_redis_failover.py::test_a_cluster_primary_killed_under_load": 8,
    "conversations/test_openai_sdks.py::test_a_chat": 8,
    "test_failure_messages.py::test_a_command_with_redis_down_names_redis_url_and_how_to_start_one": 8,
    "test_scale_out.py::test_a_conversation_started_on_one_instance_continues_on_the_other": 8,
    "test_redis_failover.py::test_a_sentinel_primary_killed_under_load": 7,
    "test_redis_topologies_scale_out.py::test_login_refresh_logout_and_revocation_are_seen_by_both_instances": 7,
    "test_redis_topologies_scale_out.py::test_usage_and_chat_limits_count_across_instances": 7,
    "llm_provider/test_rate_limits.py::test_metrics_show_the_latest_answer_whichever_gunicorn_worker_saw_it": 7,
    "test_docs.py::test_concurrent_requests_for_the_schema_all_get_the_same_document": 7,
    "conversations/test_idempotency.py::test_a_key_holds_across_instances": 7,
    "test_metrics.py::test_logins_succeeded_failed_and_throttled": 7,
    "test_weak_secrets.py::test_gunicorn_refuses_to_start_with_an_admin_on_admin123": 7,
    "conversations/test_admission.py::test_under_gunicorn_new_chats_are_refused_at_the_lag_threshold_and_health_answers": 6,  # noqa: E501
    "conversations/test_session_caps.py::test_the_reported_case_one_admin_opening_sessions_under_gunicorn": 6,
    "test_debug_mode.py::test_an_instance_with_debug_on_says_so_at_start_naming_what_set_it": 5,
    "test_weak_secrets.py::test_gunicorn_refuses_the_example_values_the_docker_docs_once_showed": 5,
    "test_llm_not_configured.py::test_gunicorn_warns_once_at_start_and_each_chat_logs_one_line": 5,
    "test_redis_topologies_scale_out.py::test_login_throttles_count_across_instances": 5,
    "conversations/test_stream_left.py::test_a_stream_left_by_its_client_closes_its_upstream_request_at_once": 5,
    "conversations/test_server_busy.py::test_chats_beyond_the_cap_get_503_while_health_and_login_keep_answering": 5,
    "accounts/test_budget_alerts.py::test_a_bad_alert_or_audit_setting_stops_startup_naming_it": 5,
    "test_tracing.py::test_the_server_refuses_to_start_with_an_otlp_protocol_it_cannot_speak": 5,
    "test_stand_in.py::test_make_try_answers_chats_and_structured_outputs_without_a_groq_key": 4,
    "test_redis_data_lost.py::test_a_server_knows_from_its_start_that_a_later_empty_redis_lost_its_data": 4,
    "conversations/test_server_busy.py::test_the_worker_refuses_a_chat_past_the_cap_from_the_socket_and_keeps_the_connection": 4,  # noqa: E501
    "browser/test_ui.py::test_swagger_ui_renders_offline": 4,
    "test_server.py::test_an_instance_keeps_no_control_socket_that_another_on_the_host_would_share": 4,
    "test_weak_secrets.py::test_the_docs_examples_stop_production_startup_as_the_default_admin_password": 4,
    "test_anonymous_guard.py::test_a_worker_serves_at_most_anon_max_concurrent_anonymous_requests_at_once": 4,
    "conversations/test_idempotency.py::test_the_schema_documents_the_key_and_the_replay_header": 4,
}
TOPOLOGY_IN_ID = re.compile(r"[\[-](single|cluster|sentinel)[\]-]")


def _topology_suite(module: str) -> bool:
    return any(module == suite or module.startswith(f"{suite}/") for suites in SUITES_ON.values() for suite in suites)


def seconds(nodeid: str) -> float:
    return SECONDS.get(nodeid.split("[", 1)[0].removeprefix("tests/"), DEFAULT_SECONDS)


class ByModuleAndTopology(LoadScopeScheduling):
    """loadscope with a unit per module and topology (per test in SPREAD), the slowest units first."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self._ordered = False

    def _split_scope(self, nodeid: str) -> str:
        scope = super()._split_scope(nodeid)
        module = scope.split("::", 1)[0]
        if module in SPREAD:
            return nodeid
        found = TOPOLOGY_IN_ID.search(nodeid[len(scope) :])
        if found and _topology_suite(module):
            return f"{scope}::{found.group(1)}"
        return scope

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:  # the first unit handed out: the queue is complete, put it in order
            self._ordered = True
            units = sorted(self.workqueue.items(), key=lambda unit: sum(map(seconds, unit[1])), reverse=True)
            self.workqueue.clear()
            self.workqueue.update(units)
        super()._assign_work_unit(node)
