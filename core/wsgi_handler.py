"""Django's WSGI handler, its requests freed by reference counting once answered.

django.contrib.auth's middleware gives each request a `user` (a lazy object whose function holds the request) and
an `auser` (a partial holding it): a cycle that only the garbage collector frees, and with the request its environ,
session, token and admin, and, through gunicorn's early-hints callback in the environ, gunicorn's request and
response (about 40 objects a request). A chat outlives the collector's young generations, so every chat's request
reached the oldest one, whose full collections stop a worker's loop (docs/performance.md)."""

from __future__ import annotations

from django.core.handlers import wsgi
from django.core.wsgi import get_wsgi_application

# What AuthenticationMiddleware sets on a request, each holding the request.
AUTH_ATTRIBUTES = ("user", "auser")


class WSGIRequest(wsgi.WSGIRequest):
    def close(self) -> None:
        super().close()  # the handler closes the request once the server has closed the response
        for name in AUTH_ATTRIBUTES:
            self.__dict__.pop(name, None)


def wsgi_application() -> wsgi.WSGIHandler:
    """Django's WSGI application, its requests those above."""
    handler = get_wsgi_application()
    handler.request_class = WSGIRequest
    return handler
