"""Property tests: history trimming and the per-admin key namespace hold for any input."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conversations.history import CacheHistoryStore, message
from conversations.history.redis_keys import session_keys
from conversations.limits import turn_hold_seconds
from conversations.stores import history_store
from conversations.trimming import estimate_tokens, trim_history, upstream_messages
from tests.support import SLOW_MACHINE

roles = st.sampled_from(["user", "assistant"])
messages = st.lists(
    st.builds(lambda role, content: {"role": role, "content": content}, roles, st.text(max_size=200)), max_size=40
)


@given(history=messages, max_messages=st.integers(0, 50), max_tokens=st.integers(0, 2000))
def test_trimming_keeps_the_newest_messages_within_both_limits(history, max_messages, max_tokens):
    kept = trim_history(history, max_messages=max_messages, max_tokens=max_tokens)

    assert kept == history[len(history) - len(kept) :]  # a suffix: the newest, in order
    assert len(kept) <= max_messages
    assert sum(estimate_tokens(m["content"]) for m in kept) <= max_tokens
    assert not kept or kept[0]["role"] == "user"


@given(history=messages, max_messages=st.integers(1, 50), max_tokens=st.integers(0, 2000))
def test_trimming_drops_nothing_it_could_keep(history, max_messages, max_tokens):
    kept = trim_history(history, max_messages=max_messages, max_tokens=max_tokens)
    earlier = history[: len(history) - len(kept)]
    # The next older user message (with what follows it) would break a limit.
    for start in range(len(earlier) - 1, -1, -1):
        if earlier[start]["role"] == "user":
            candidate = history[start:]
            assert len(candidate) > max_messages or sum(estimate_tokens(m["content"]) for m in candidate) > max_tokens
            break


@given(history=messages, text=st.text(min_size=1, max_size=100), system=st.text(max_size=50))
def test_upstream_messages_frame_the_history(history, text, system):
    trimmed = trim_history(history, max_messages=10, max_tokens=500)
    sent = upstream_messages([{"role": "user", "content": text}], trimmed, system_prompt=system)

    assert sent[-1] == {"role": "user", "content": text}
    assert (sent[0] == {"role": "system", "content": system}) == bool(system)
    assert sent[bool(system) : -1] == [{"role": m["role"], "content": m["content"]} for m in trimmed]


session_ids = st.from_regex(r"[A-Za-z0-9_-]{1,100}", fullmatch=True)
admin_ids = st.from_regex(r"[0-9a-f]{16}", fullmatch=True)


@given(a=st.tuples(admin_ids, session_ids), b=st.tuples(admin_ids, session_ids))
def test_history_keys_never_collide(a, b):
    for key in (CacheHistoryStore._key, session_keys):
        assert (key(*a) == key(*b)) == (a == b)


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[*SLOW_MACHINE, HealthCheck.function_scoped_fixture]
)
@given(
    a=st.tuples(admin_ids, session_ids),
    b=st.tuples(admin_ids, session_ids),
    backend=st.sampled_from(["locmem", "redis"]),
)
def test_one_admins_session_is_invisible_to_any_other_key(a, b, backend, settings):
    settings.HISTORY_BACKEND = backend
    store = history_store()
    marker = uuid.uuid4().hex
    with store.session_turn(*a, hold_seconds=turn_hold_seconds()) as turn:
        turn.finish([message("user", marker)], {})
    try:
        other = store.get(*b)
        if a != b:
            assert other is None or all(m["content"] != marker for m in other.messages)
            assert not any(s.session_id == a[1] for s in store.list(b[0])) or a[0] == b[0]
        else:
            assert other.messages[-1]["content"] == marker
    finally:
        store.delete(*a)
