"""A request answered by any DRF view leaves its request, view and response to reference counting, not to the
garbage collector (core/views.py): health probes, session lists and refusals alike."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from tests.support import ALICE_PASSWORD, drf_objects_left_to_the_collector, login


@pytest.mark.parametrize(
    ("path", "who", "status"),
    [
        ("/health/live", "anonymous", HTTPStatus.OK),  # a function view, with Django's `head` bound to its `get`
        ("/health", "anonymous", HTTPStatus.OK),
        ("/chat/sessions", "alice", HTTPStatus.OK),  # a viewset, its actions bound to it by method
        ("/chat/sessions", "a bad token", HTTPStatus.UNAUTHORIZED),
        ("/admin/info", "alice", HTTPStatus.OK),
    ],
)
def test_a_request_answered_leaves_its_request_view_and_response_to_reference_counting(alice, path, who, status):
    client = APIClient()
    if who == "alice":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(APIClient(), 'alice', ALICE_PASSWORD)['access_token']}")
    elif who == "a bad token":
        client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    client.get(path)  # whatever a first request loads or caches is not this request's garbage

    def answer():
        response = client.get(path)
        assert response.status_code == status
        return response

    assert drf_objects_left_to_the_collector(answer) == []
