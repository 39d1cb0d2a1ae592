"""A page of an admin's sessions, newest first, each with the first words of its first message: what the console's
sidebar reads without reading the admin's other sessions."""

from __future__ import annotations

from conversations.selectors import session_list
from tests.support import chat


def test_the_sessions_come_a_page_at_a_time_newest_first_with_their_first_words(history_backend, alice, alice_client):
    for name in ("a", "b", "c", "d"):
        chat(alice_client, f"First   words of\n{name}", session_id=name)
    chat(alice_client, "a again", session_id="a")  # used last: first in the list

    everything = session_list(admin_id=alice.id)
    pages = [session_list(admin_id=alice.id, offset=offset, limit=2) for offset in (0, 2, 4)]

    assert [s.session_id for s in everything] == ["a", "d", "c", "b"]
    assert [[s.session_id for s in page] for page in pages] == [["a", "d"], ["c", "b"], []]
    assert {s.session_id: s.first_words for s in everything}["c"] == "First words of c"
    assert everything[0].first_words == "First words of a"
