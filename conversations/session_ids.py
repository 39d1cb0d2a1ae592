"""What a chat session id may be, in one place: the request field, the `X-Session-Id` header and the URLs."""

from __future__ import annotations

import re
import secrets

# Without anchors, for URL patterns; `is_session_id` matches it whole.
SESSION_ID_REGEX = "[A-Za-z0-9_-]{1,100}"
SESSION_ID_RULE = "Use 1-100 letters, digits, '_' or '-' (but not 'import')."
_SESSION_ID = re.compile(SESSION_ID_REGEX)
# `/chat/sessions/import` imports a session, so no session may be called that.
RESERVED_SESSION_IDS = frozenset({"import"})
# The version of `GET /chat/sessions/{id}/export`'s document, which `POST /chat/sessions/import` reads.
EXPORT_FORMAT = "chatbot-session/1"


def is_session_id(value: str) -> bool:
    return _SESSION_ID.fullmatch(value) is not None and value not in RESERVED_SESSION_IDS


def new_session_id() -> str:
    return secrets.token_urlsafe(12)
