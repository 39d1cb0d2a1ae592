from django.urls import re_path

from conversations import session_views, usage_views, views
from conversations.session_ids import SESSION_ID_REGEX

sessions = session_views.ChatSessionViewSet.as_view({"get": "list"}, name="Chat sessions")
session = session_views.ChatSessionViewSet.as_view({"get": "retrieve", "delete": "destroy"}, name="Chat session")

# The documented paths (docs/api.md), each also answering with a trailing slash.
urlpatterns = [
    re_path(r"^chat/?$", views.ChatView.as_view(), name="chat"),
    re_path(r"^chat/memory/stats/?$", session_views.MemoryStatsView.as_view(), name="memory-stats"),
    re_path(r"^chat/sessions/?$", sessions, name="chat-session-list"),
    re_path(r"^chat/sessions/import/?$", session_views.SessionImportView.as_view(), name="chat-session-import"),
    re_path(rf"^chat/sessions/(?P<session_id>{SESSION_ID_REGEX})/?$", session, name="chat-session-detail"),
    re_path(
        rf"^chat/sessions/(?P<session_id>{SESSION_ID_REGEX})/export/?$",
        session_views.SessionExportView.as_view(),
        name="chat-session-export",
    ),
    re_path(
        rf"^chat/sessions/(?P<session_id>{SESSION_ID_REGEX})/regenerate/?$",
        views.SessionRegenerateView.as_view(),
        name="chat-session-regenerate",
    ),
    re_path(
        rf"^chat/sessions/(?P<session_id>{SESSION_ID_REGEX})/edit/?$",
        views.SessionEditView.as_view(),
        name="chat-session-edit",
    ),
    re_path(r"^admin/test-chat/?$", views.TestChatView.as_view(), name="admin-test-chat"),
    re_path(r"^admin/usage/?$", usage_views.UsageView.as_view(), name="admin-usage"),
]
