from django.urls import re_path

from conversations.openai import views


def undocumented(view: type) -> type:
    return type(view.__name__, (view,), {"schema": None})


urlpatterns = [
    re_path(r"^v1/chat/completions/?$", views.ChatCompletionsView.as_view(), name="openai-chat-completions"),
    re_path(r"^v1/models/?$", views.ModelListView.as_view(), name="openai-models"),
    re_path(r"^v1/models/(?P<model>\S{1,200})$", views.ModelDetailView.as_view(), name="openai-model"),
    # Groq's SDK adds `/openai/v1/...` to its base URL: the same endpoints there let it use the service's root.
    re_path(
        r"^openai/v1/chat/completions/?$",
        undocumented(views.ChatCompletionsView).as_view(),
        name="groq-chat-completions",
    ),
    re_path(r"^openai/v1/models/?$", undocumented(views.ModelListView).as_view(), name="groq-models"),
    re_path(
        r"^openai/v1/models/(?P<model>\S{1,200})$",
        undocumented(views.ModelDetailView).as_view(),
        name="groq-model",
    ),
    re_path(r"^(?:openai/)?v1/", views.openai_not_found, name="openai-not-found"),
]
