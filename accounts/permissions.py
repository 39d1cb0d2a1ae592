from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.api_keys import ApiKey


class NotByApiKey(BasePermission):
    """Keys are managed with a password login: a leaked key must not be able to mint the keys that outlive it."""

    message = "API keys cannot manage API keys; log in with a password."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return not isinstance(request.auth, ApiKey)
