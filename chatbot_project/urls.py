from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from core.errors import json_not_found
from system.views import OpenApiView

# Django tries the patterns in order on every request: the chat endpoints come first (no two apps' patterns
# match the same path, so the order changes only how many are tried).
urlpatterns = [
    path("", include("conversations.urls")),
    path("", include("conversations.openai.urls")),
    path("", include("system.urls")),
    re_path(r"^openapi\.json$", OpenApiView.as_view(), name="openapi"),
    re_path(r"^docs/?$", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    re_path(r"^redoc/?$", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path("console/", include("console.urls")),
    re_path(r"^console$", RedirectView.as_view(url="/console/")),
    path("", include("accounts.urls")),
    path("", include("llm_provider.urls")),
    # Unknown paths answer JSON even with DEBUG on (Django's debug page would ignore handler404).
    re_path(r"^", csrf_exempt(json_not_found)),
]

handler400 = "core.errors.json_bad_request"
handler403 = "core.errors.json_permission_denied"
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"
