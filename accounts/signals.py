"""Login outcomes for the metrics: Django signals a failed password check and a browser login; a token login is
counted by serializers.LoginSerializer, a throttled one by throttling.login_attempt_start."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from core.metrics import login_counted


@receiver(user_login_failed)
def _login_failed(sender: object, **kwargs: object) -> None:
    login_counted("failed")


@receiver(user_logged_in)
def _browser_login(sender: object, **kwargs: object) -> None:
    login_counted("succeeded")
