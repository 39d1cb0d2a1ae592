"""core/admission.py's rule for taking a new chat, and the refusal the worker sends from the socket."""

from __future__ import annotations

import json

from conversations.openai.wire import openai_error
from core.admission import AdmissionGate, Refusal, refusal_body, refusal_bytes
from server.worker import Framing


def test_a_full_process_refuses_until_a_tenth_of_its_slots_are_free_again():
    gate = AdmissionGate()
    assert gate.refusal(99, 100, 0.0, 100) is None
    refused = gate.refusal(100, 100, 0.0, 100)
    assert refused is not None and refused.retry_after == 1
    assert "MAX_CHATS_IN_FLIGHT (100)" in refused.detail
    assert gate.refusal(95, 100, 0.0, 100) is not None  # still refusing: no burst of admissions at the edge
    assert gate.refusal(89, 100, 0.0, 100) is None
    assert gate.refusal(95, 100, 0.0, 100) is None


def test_a_late_loop_refuses_until_its_lag_is_under_three_quarters_of_the_limit():
    gate = AdmissionGate()
    assert gate.refusal(0, 100, 0.099, 100) is None
    refused = gate.refusal(0, 100, 0.100, 100)
    assert refused is not None and refused.retry_after == 5
    assert "CHAT_ADMIT_MAX_LOOP_LAG_MS 100" in refused.detail
    assert gate.refusal(0, 100, 0.080, 100) is not None
    assert gate.refusal(0, 100, 0.074, 100) is None
    assert gate.refusal(0, 100, 0.099, 100) is None


def test_the_refusal_has_the_paths_error_shape():
    refusal = Refusal("busy", 1)
    assert refusal_body("/v1/chat/completions", refusal) == openai_error("busy", status=503, code="server_busy")
    assert refusal_body("/openai/v1/chat/completions", refusal)["error"]["code"] == "server_busy"
    assert refusal_body("/chat/", refusal) == {"detail": "busy", "code": "server_busy"}


def test_the_sockets_refusal_is_a_whole_http_response():
    head, _, body = refusal_bytes("/chat/", Refusal("busy", 5), keep_alive=False).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert {"Retry-After: 5", "Connection: close", f"Content-Length: {len(body)}"} <= set(lines)
    assert json.loads(body) == {"detail": "busy", "code": "server_busy"}


def test_the_worker_reads_which_requests_start_a_chat_and_whether_they_keep_the_connection():
    def framing(head: bytes) -> Framing:
        return Framing.of(head, len(head) + 4)

    assert framing(b"POST /chat/ HTTP/1.1\r\nHost: x").new_chat_path == "/chat/"
    assert framing(b"POST /v1/chat/completions?x=1 HTTP/1.1").new_chat_path == "/v1/chat/completions"
    assert framing(b"POST /chat/sessions/abc/regenerate HTTP/1.1").new_chat_path == "/chat/sessions/abc/regenerate"
    assert framing(b"POST /console/api/chat HTTP/1.1").new_chat_path == "/console/api/chat"
    assert framing(b"POST /console/api/chat/abc/edit HTTP/1.1").new_chat_path == "/console/api/chat/abc/edit"
    assert framing(b"GET /chat/ HTTP/1.1").new_chat_path is None
    assert framing(b"POST /chat/sessions HTTP/1.1").new_chat_path is None
    assert framing(b"POST /admin/login HTTP/1.1").new_chat_path is None
    assert framing(b"POST /chat/ HTTP/1.1").keep_alive
    assert not framing(b"POST /chat/ HTTP/1.1\r\nConnection: close").keep_alive
    assert not framing(b"POST /chat/ HTTP/1.0").keep_alive
    assert framing(b"POST /chat/ HTTP/1.0\r\nConnection: Keep-Alive").keep_alive
