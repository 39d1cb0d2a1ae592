from django.urls import re_path

from conversations.openai import views
from conversations.responses import conversation_views as conversations
from conversations.responses import views as responses


def undocumented(view: type) -> type:
    return type(view.__name__, (view,), {"schema": None})


urlpatterns = [
    re_path(r"^v1/chat/completions/?$", views.ChatCompletionsView.as_view(), name="openai-chat-completions"),
    re_path(r"^v1/models/?$", views.ModelListView.as_view(), name="openai-models"),
    re_path(r"^v1/models/(?P<model>\S{1,200})$", views.ModelDetailView.as_view(), name="openai-model"),
    re_path(r"^v1/responses/?$", responses.ResponsesView.as_view(), name="openai-responses"),
    re_path(
        r"^v1/responses/(?P<response_id>resp_[A-Za-z0-9]{1,90})/?$",
        responses.ResponseDetailView.as_view(),
        name="openai-response",
    ),
    re_path(
        r"^v1/responses/(?P<response_id>resp_[A-Za-z0-9]{1,90})/input_items/?$",
        responses.ResponseInputItemsView.as_view(),
        name="openai-response-input-items",
    ),
    re_path(r"^v1/conversations/?$", conversations.ConversationsView.as_view(), name="openai-conversations"),
    re_path(
        r"^v1/conversations/(?P<conversation_id>conv_[A-Za-z0-9]{1,90})/?$",
        conversations.ConversationDetailView.as_view(),
        name="openai-conversation",
    ),
    re_path(
        r"^v1/conversations/(?P<conversation_id>conv_[A-Za-z0-9]{1,90})/items/?$",
        conversations.ConversationItemsView.as_view(),
        name="openai-conversation-items",
    ),
    re_path(
        r"^v1/conversations/(?P<conversation_id>conv_[A-Za-z0-9]{1,90})/items/(?P<item_id>[a-z]{2,3}_[A-Za-z0-9]{1,90})/?$",
        conversations.ConversationItemView.as_view(),
        name="openai-conversation-item",
    ),
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
