from django.urls import re_path

from accounts import api_key_views, audit_views, views

# The documented paths (docs/api.md), each also answering with a trailing slash.
urlpatterns = [
    re_path(r"^admin/login/?$", views.LoginView.as_view(), name="admin-login"),
    re_path(r"^admin/refresh/?$", views.RefreshView.as_view(), name="admin-refresh"),
    re_path(r"^admin/logout/?$", views.LogoutView.as_view(), name="admin-logout"),
    re_path(r"^admin/info/?$", views.AdminInfoView.as_view(), name="admin-info"),
    re_path(r"^admin/change-credentials/?$", views.ChangeCredentialsView.as_view(), name="admin-change-credentials"),
    re_path(r"^admin/sessions/?$", views.LoginSessionListView.as_view(), name="admin-sessions"),
    re_path(
        r"^admin/sessions/(?P<session_id>[A-Za-z0-9_-]{1,64})/?$",
        views.LoginSessionDetailView.as_view(),
        name="admin-session-detail",
    ),
    re_path(r"^admin/audit/?$", audit_views.AuditLogView.as_view(), name="admin-audit"),
    re_path(r"^admin/api-keys/?$", api_key_views.ApiKeyListView.as_view(), name="admin-api-keys"),
    re_path(
        r"^admin/api-keys/(?P<key_id>[a-f0-9]{16})/?$",
        api_key_views.ApiKeyDetailView.as_view(),
        name="admin-api-key-detail",
    ),
]
