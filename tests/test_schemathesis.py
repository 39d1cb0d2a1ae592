"""Bad input found by a tool we did not write: schemathesis generates valid and invalid requests for every
operation in /openapi.json, authenticated, and checks that nothing answers 5xx or contradicts the schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode, checks

from accounts.admins import admin_get
from accounts.services import admin_create
from accounts.tokens import tokens_issue
from chatbot_project.wsgi import application
from tests.support import SLOW_MACHINE

schema = schemathesis.openapi.from_wsgi("/openapi.json", application)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=40)


@pytest.fixture
def fuzz_admin(settings):
    # Generated bodies must reach the code under test, not the throttles.
    settings.CHAT_REQUESTS_PER_MINUTE = 0
    # The negative-auth checks send many bad tokens from one address, which the anonymous guard would refuse.
    settings.ANON_REQUESTS_PER_MINUTE = 0
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = settings.LOGIN_MAX_FAILURES_PER_IP = 10**6
    return admin_create(username="fuzz", password="fuzz-password-1")


@schema.parametrize()
@hypothesis_settings(suppress_health_check=[*SLOW_MACHINE, HealthCheck.function_scoped_fixture], deadline=None)
def test_the_api_honours_its_schema(case, fuzz_admin):
    # A fresh login per case, as the admin is now: a generated logout or credential change must not starve the
    # cases after it.
    token = tokens_issue(admin_get(fuzz_admin.id)).access_token
    # Every check but the two about how strict validation is: DRF accepts `0` for a string and rejects
    # a NUL byte the schema cannot express; both answers are documented (200 or 400), neither is a fault.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[checks.negative_data_rejection, checks.positive_data_acceptance],
    )
