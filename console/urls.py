from django.urls import path, re_path

from console import api, views
from conversations.session_ids import SESSION_ID_REGEX

app_name = "console"

SESSION = rf"(?P<session_id>{SESSION_ID_REGEX})"

urlpatterns = [
    path("", views.chat, name="chat"),
    path("sign-in", views.sign_in, name="sign-in"),
    path("sign-out", views.sign_out, name="sign-out"),
    re_path(rf"^chat/{SESSION}$", views.chat, name="session"),
    re_path(rf"^chat/{SESSION}/delete$", views.session_delete, name="session-delete"),
    re_path(rf"^chat/{SESSION}/export$", views.session_export, name="session-export"),
    path("import", views.session_import, name="session-import"),
    path("keys", views.keys, name="keys"),
    path("keys/create", views.key_create, name="key-create"),
    re_path(r"^keys/(?P<key_id>[a-f0-9]{16})/revoke$", views.key_revoke, name="key-revoke"),
    re_path(r"^keys/(?P<key_id>[a-f0-9]{16})/change$", views.key_change, name="key-change"),
    path("status", views.status, name="status"),
    path("audit", views.audit, name="audit"),
    path("usage", views.usage, name="usage"),
    # The chat page's script: streamed replies (console/api.py).
    path("api/chat", api.ChatStreamView.as_view(), name="api-chat"),
    re_path(rf"^api/chat/{SESSION}/regenerate$", api.RegenerateStreamView.as_view(), name="api-regenerate"),
    re_path(rf"^api/chat/{SESSION}/edit$", api.EditStreamView.as_view(), name="api-edit"),
]
