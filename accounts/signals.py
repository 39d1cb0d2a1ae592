"""Login outcomes for the metrics: Django signals a failed password check and a browser login; a token login is
counted where its tokens are issued, a throttled one where it is refused."""

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
