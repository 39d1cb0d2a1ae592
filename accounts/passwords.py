"""The password rule, bcrypt hashing with its 72-byte limit checked up front, and a constant-cost check for
unknown users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import bcrypt
from django.conf import settings

from core.cooperative import off_the_loop
from core.host_slots import HostSlots
from core.weak_secrets import is_known_default_password

BCRYPT_MAX_BYTES = 72
MIN_PASSWORD_CHARS = 8


def bcrypt_limit_problem(password: str) -> str | None:
    """Why bcrypt cannot check `password`, or None: it reads 72 bytes at most, and a longer password is refused
    rather than silently cut."""
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        return f"Password must be at most {BCRYPT_MAX_BYTES} bytes long (UTF-8)."
    return None


def password_problem(password: str) -> str | None:
    """Why `password` cannot be stored, or None when it can."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Password must be at least {MIN_PASSWORD_CHARS} characters long."
    too_long = bcrypt_limit_problem(password)
    if too_long:
        return too_long
    if is_known_default_password(password):
        return "Password is a well-known default or an example from the documentation; choose another."
    return None


# Past this wait for a slot shared with the server's other workers, the hash runs anyway: still at most
# BCRYPT_MAX_CONCURRENT at once in this worker (a bound of the worker's own), so a login is slowed,
# never refused or hung, by a slot that a stuck process holds.
HOST_SLOT_WAIT_SECONDS = 2.0


@lru_cache(maxsize=1)
def _bcrypt_slots(count: int, directory: str | None) -> HostSlots:
    return HostSlots("bcrypt", count, directory, HOST_SLOT_WAIT_SECONDS)


@contextmanager
def _bcrypt_slot() -> Iterator[None]:
    """bcrypt is meant to be slow; a burst of logins may use BCRYPT_MAX_CONCURRENT cores of the server at most
    (across its workers; of the process without gunicorn), and leaves the rest to chats."""
    with _bcrypt_slots(settings.BCRYPT_MAX_CONCURRENT, settings.HOST_SLOTS_DIR).hold():
        yield


def password_hash(password: str) -> str:
    salt = bcrypt.gensalt(rounds=settings.BCRYPT_ROUNDS)
    with _bcrypt_slot():
        return off_the_loop(lambda: bcrypt.hashpw(password.encode(), salt)).decode()


def password_matches(password: str, hashed: str | None) -> bool:
    """Checks `password` against `hashed`; with no hash it still spends one bcrypt check, so a missing
    username takes as long to refuse as a wrong password."""
    if bcrypt_limit_problem(password):
        return False
    encoded = password.encode()
    dummy = _dummy_hash(settings.BCRYPT_ROUNDS)  # made once, outside the slot
    with _bcrypt_slot():
        if not hashed:
            off_the_loop(lambda: bcrypt.checkpw(encoded, dummy))
            return False
        try:
            return off_the_loop(lambda: bcrypt.checkpw(encoded, hashed.encode()))
        except ValueError:
            return False


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    return off_the_loop(lambda: bcrypt.hashpw(b"no such admin", bcrypt.gensalt(rounds=rounds)))
