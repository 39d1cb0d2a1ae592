from django.urls import re_path

from system import views

urlpatterns = [
    re_path(r"^$", views.api_root, name="api-root"),
    re_path(r"^health/?$", views.health, name="health"),
    re_path(r"^health/live/?$", views.liveness, name="liveness"),
    re_path(r"^info/?$", views.info, name="info"),
    re_path(r"^metrics/?$", views.MetricsView.as_view(), name="metrics"),
    re_path(r"^admin/status/?$", views.admin_status, name="admin-status"),
    re_path(r"^favicon\.ico$", views.favicon, name="favicon"),
]
