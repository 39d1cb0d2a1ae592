"""What the admin management commands share: reading a password and finding an admin."""

from __future__ import annotations

import getpass
import os
import sys

from django.core.management.base import CommandError, CommandParser

from accounts.admins import admin_get_by_username
from accounts.models import AdminUser
from accounts.passwords import password_problem
from core.startup import redis_in_use

PASSWORD_ENV = "ADMIN_PASSWORD"


def add_password_arguments(parser: CommandParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--password",
        help=f"The password. Without it, {PASSWORD_ENV} is read from the environment, else you are prompted.",
    )
    source.add_argument(
        "--stdin",
        action="store_true",
        help="Read the password from the first line of standard input (for scripts: it shows in no process list).",
    )


def read_password(given: str | None, *, from_stdin: bool = False) -> str:
    password = _password_from_stdin() if from_stdin else given or os.environ.get(PASSWORD_ENV)
    if not password:
        if not sys.stdin.isatty():
            raise CommandError(f"No password: pass --password or --stdin, set {PASSWORD_ENV}, or run in a terminal.")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
    problem = password_problem(password)
    if problem:
        raise CommandError(problem)
    return password


def _password_from_stdin() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("--stdin: standard input held no password (an empty first line, or nothing).")
    return password


def find_admin(username: str) -> AdminUser:
    admin = admin_get_by_username(username)
    if admin is None:
        raise CommandError(
            f"No admin named {username!r} in the {redis_in_use()}. If the server uses another Redis, run this "
            "command with its REDIS_URL and REDIS_KEY_PREFIX."
        )
    return admin
