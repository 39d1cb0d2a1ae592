from django.urls import re_path
from rest_framework.routers import SimpleRouter

from conversations import views

router = SimpleRouter(trailing_slash="/?")
router.register("chat/sessions", views.ChatSessionViewSet, basename="chat-session")

urlpatterns = [
    re_path(r"^chat/?$", views.ChatView.as_view(), name="chat"),
    re_path(r"^chat/memory/stats/?$", views.MemoryStatsView.as_view(), name="memory-stats"),
    *router.urls,
]
