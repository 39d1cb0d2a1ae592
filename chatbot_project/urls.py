from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView

from chatbot_project import views
from chatbot_project.errors import json_not_found

urlpatterns = [
    re_path(r"^health/?$", views.health, name="health"),
    re_path(r"^health/live/?$", views.liveness, name="liveness"),
    re_path(r"^info/?$", views.info, name="info"),
    re_path(r"^metrics/?$", views.MetricsView.as_view(), name="metrics"),
    re_path(r"^openapi\.json$", SpectacularJSONAPIView.as_view(), name="openapi"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    re_path(r"^redoc/?$", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    re_path(r"^admin/status/?$", views.admin_status, name="admin-status"),
    path("", include("accounts.urls")),
    path("", include("llm_provider.urls")),
    path("", include("conversations.urls")),
    path("", include("conversations.openai_urls")),
    # Unknown paths answer JSON even with DEBUG on (Django's debug page would ignore handler404).
    re_path(r"^", csrf_exempt(json_not_found)),
]

handler400 = "chatbot_project.errors.json_bad_request"
handler403 = "chatbot_project.errors.json_permission_denied"
handler404 = "chatbot_project.errors.json_not_found"
handler500 = "chatbot_project.errors.json_server_error"
