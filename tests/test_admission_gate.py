"""core/admission.py's rule for taking a new chat, and the refusal the worker sends from the socket."""

from __future__ import annotations

import json
import socket

from conversations.openai.wire import openai_error
from core.admission import (
    STREAM_CAP_CUT,
    STREAM_CAP_LAG_MS,
    STREAM_CAP_RISE_LAG_MS,
    STREAM_CAP_RISE_SHARE,
    STREAM_REQUESTED,
    AdmissionGate,
    Refusal,
    StreamCap,
    refusal_body,
    refusal_bytes,
)
from server.worker import Framing, Limits, RequestSocket


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


def test_a_stream_cap_starts_at_the_memory_cap_and_refuses_there_with_retry_after_5():
    cap = StreamCap(100)
    assert cap.refusal(99, 0.0, now=0.0) is None
    refused = cap.refusal(100, 0.0, now=0.1)
    assert refused is not None and refused.retry_after == 5


def test_a_late_loop_cuts_the_stream_cap_under_the_streams_held_once_they_are_down_to_the_last_cut():
    cap = StreamCap(100)
    late = STREAM_CAP_LAG_MS / 1000
    assert cap.refusal(80, late, now=0.0) is not None  # cut to 72
    assert cap.limit == 80 * STREAM_CAP_CUT
    assert cap.refusal(80, late, now=0.1) is not None  # adjusted at most every STREAM_CAP_ADJUST_SECONDS
    assert cap.refusal(75, late, now=1.0) is not None
    assert cap.limit == 80 * STREAM_CAP_CUT  # the streams it let in are still being served: no second cut yet
    assert cap.refusal(72, late, now=2.0) is not None
    assert cap.limit == 72 * STREAM_CAP_CUT
    assert cap.refusal(0, late, now=3.0) is None  # a late loop with no stream still takes one
    assert cap.limit == 1


def test_a_loop_that_keeps_up_raises_the_stream_cap_a_step_at_a_time_while_the_cap_binds_up_to_the_memory_cap():
    cap = StreamCap(100)
    cap.limit = 50.0
    step = 100 * STREAM_CAP_RISE_SHARE
    assert cap.refusal(50, 0.0, now=0.0) is None
    assert cap.limit == 50 + step
    assert cap.refusal(50, STREAM_CAP_RISE_LAG_MS / 1000, now=1.0) is None  # late, if not enough to cut: held
    assert cap.limit == 50 + step
    assert cap.refusal(10, 0.0, now=2.0) is None  # far under the cap: not raised
    assert cap.limit == 50 + step
    for second in range(3, 100):
        cap.refusal(int(cap.limit), 0.0, now=float(second))
    assert cap.limit == 100


def test_the_worker_counts_the_streams_it_takes_and_refuses_a_new_one_past_the_stream_cap_only():
    limits = Limits(1.0, 1.0, 1.0, 1000, 10_000, max_chats=10, max_lag_ms=1000)
    framing = Framing.of(b"POST /chat/ HTTP/1.1", 24)
    assert limits.admit("/chat/", framing, streamed=True) is None
    assert (limits.chats, limits.streams) == (1, 1)
    limits.stream_cap.limit = 1
    refusal = limits.admit("/chat/", framing, streamed=True)
    assert refusal is not None and b"\r\nRetry-After: 5\r\n" in refusal and b"server_busy" in refusal
    assert limits.admit("/chat/", framing, streamed=False) is None  # a chat that ends within its reply still goes in
    assert (limits.chats, limits.streams) == (2, 1)


def test_a_socket_gives_its_stream_back_once_it_is_answered():
    limits = Limits(1.0, 1.0, 1.0, 1000, 10_000, max_chats=10, max_lag_ms=1000)
    ours, theirs = socket.socketpair()
    guarded = RequestSocket(ours.family, ours.type, ours.proto, fileno=ours.detach()).setup(limits)
    body = b'{"message": "hi", "stream" : true}'
    with guarded, theirs:
        theirs.sendall(b"POST /chat/ HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert guarded.recv(65536).endswith(body)
        assert (limits.chats, limits.streams) == (1, 1)
        theirs.sendall(b"GET /health/live HTTP/1.1\r\n\r\n")  # the next request: the stream was answered
        assert guarded.recv(65536).startswith(b"GET /health/live")
        assert (limits.chats, limits.streams) == (0, 0)


def test_a_request_asks_for_a_stream_by_a_key_of_its_body_not_by_text_in_a_string():
    def streamed(body: dict) -> bool:
        return STREAM_REQUESTED.search(json.dumps(body).encode()) is not None

    assert streamed({"message": "hi", "stream": True})
    assert STREAM_REQUESTED.search(b'{"stream":true}')
    assert not streamed({"message": "hi", "stream": False})
    assert not streamed({"message": 'say "stream": true'})
    assert not streamed({"message": "hi"})
