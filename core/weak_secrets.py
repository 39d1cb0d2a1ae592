"""Secrets and passwords that must never run in production: every example value in this project's docs and in
the FastAPI ChatGroq API's README this API follows (anyone can read them), and well-known weak ones.

tests/test_weak_secrets.py scans the docs and examples and fails when one of their values is not refused here."""

from __future__ import annotations

import re

# Example and placeholder values, lower-cased.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me-to-a-random-string-of-at-least-32-characters",
        "your-super-secret-key-min-32-characters-long",
        "your-secure-secret-key",
        "insecure-development-key-do-not-use-in-production-0123456789",
    }
)
KNOWN_DEFAULT_PASSWORDS = frozenset(
    {
        "admin123",
        "change-me-too-12-chars",
        "password",
        "password123",
        "changeme",
        "12345678",
        "123456789012",
        "admin",
        "adminadmin",
        "administrator",
        "qwertyuiop",
        "letmein",
    }
)
# The docs' examples of a password for a new admin or a credential change: fine for trying the API out, never for
# the admin a production instance creates at its first start.
DOCUMENTED_EXAMPLE_PASSWORDS = frozenset({"a-long-password", "newsecurepass"})
# A value containing one of these was copied from an example and never replaced.
_PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "replace-me", "your-secret", "your-super-secret")
# A placeholder in the docs' style: `your_groq_api_key_here`, `<your-password>`, `YOUR_REFRESH_TOKEN`.
_PLACEHOLDER = re.compile(r"^<.*>$|^your[-_].+|.+[-_]here$")
_MIN_SECRET_CHARS = 32
_MIN_DISTINCT_SECRET_CHARS = 12


def secret_problem(value: str) -> str | None:
    """Why `value` cannot sign tokens in production, or None when it can."""
    lowered = value.lower()
    if len(value) < _MIN_SECRET_CHARS:
        return f"must be at least {_MIN_SECRET_CHARS} characters long"
    if (
        lowered in PLACEHOLDER_SECRETS
        or any(marker in lowered for marker in _PLACEHOLDER_MARKERS)
        or _PLACEHOLDER.match(lowered)
    ):
        return "is an example value from the documentation; anyone who read it can forge tokens"
    if lowered.startswith("django-insecure"):
        return "is Django's insecure development key"
    if len(set(value)) < _MIN_DISTINCT_SECRET_CHARS:
        return "is not random (too few distinct characters)"
    return None


def is_known_default_password(password: str) -> bool:
    lowered = password.lower()
    return lowered in KNOWN_DEFAULT_PASSWORDS or any(marker in lowered for marker in _PLACEHOLDER_MARKERS)


def is_weak_default_admin_password(password: str) -> bool:
    """Whether DEFAULT_ADMIN_PASSWORD is a value anyone could read in the docs: a known default, a documented
    example, or a placeholder left in place (`your_groq_api_key_here`)."""
    lowered = password.lower()
    return (
        is_known_default_password(password)
        or lowered in DOCUMENTED_EXAMPLE_PASSWORDS
        or _PLACEHOLDER.match(lowered) is not None
    )
