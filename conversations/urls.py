from django.urls import re_path

from conversations import views

sessions = views.ChatSessionViewSet.as_view({"get": "list"})
session = views.ChatSessionViewSet.as_view({"get": "retrieve", "delete": "destroy"})

# Seed paths, each also answering with a trailing slash.
urlpatterns = [
    re_path(r"^chat/?$", views.ChatView.as_view(), name="chat"),
    re_path(r"^chat/memory/stats/?$", views.MemoryStatsView.as_view(), name="memory-stats"),
    re_path(r"^chat/sessions/?$", sessions, name="chat-session-list"),
    re_path(r"^chat/sessions/(?P<session_id>[a-zA-Z0-9_-]{1,100})/?$", session, name="chat-session-detail"),
]
