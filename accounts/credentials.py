"""What a username and a new password must be; passwords.py has the password rule itself and bcrypt."""

from __future__ import annotations

import re
import unicodedata

from accounts.exceptions import InvalidCredentialInput
from accounts.passwords import password_problem

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")


def username_folded(username: str) -> str:
    """The form two usernames are compared in: `Erin`, `ERIN` and `erin` are one name."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_problem(username: str) -> str | None:
    if not USERNAME_PATTERN.match(username):
        return "Username must be 1-150 characters: letters, digits and _ . @ + -"
    return None


def new_credentials_check(*, username: str | None = None, password: str | None = None) -> None:
    """Raises InvalidCredentialInput when the new `username` or `password` (None: unchanged) cannot be stored."""
    problem = (username is not None and username_problem(username)) or (
        password is not None and password_problem(password)
    )
    if problem:
        raise InvalidCredentialInput(problem)
