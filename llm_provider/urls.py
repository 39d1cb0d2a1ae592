from django.urls import re_path

from llm_provider import views

urlpatterns = [
    re_path(r"^llm/provider/?$", views.provider, name="llm-provider"),
    re_path(r"^llm/providers/?$", views.providers, name="llm-providers"),
    re_path(r"^llm/health/?$", views.health, name="llm-health"),
]
