"""With DEBUG off, the service never runs on a secret or password that anyone could read in its docs."""

from __future__ import annotations

import re
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.services import admin_create
from accounts.startup import admin_startup_check
from core.redis_store import redis_admin_key, redis_client
from core.weak_secrets import is_known_default_password, is_weak_default_admin_password, secret_problem
from tests.server import server_command, server_env
from tests.support import ROOT, manage_check

SEED = ROOT.parent / "shared" / "seed" / "README.md"
# The project's own docs and examples, and the README of the FastAPI ChatGroq API this API follows (shared/seed,
# when present).
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / ".env.example",
    ROOT / "docker-compose.yml",
    *sorted((ROOT / "docs").glob("*.md")),
    *[path for path in [SEED] if path.exists()],
]
SECRETS = ("SECRET_KEY", "JWT_SIGNING_KEY", "METRICS_TOKEN")
PASSWORDS = ("DEFAULT_ADMIN_PASSWORD",)
_ASSIGNMENT = re.compile(r"\b(" + "|".join(SECRETS + PASSWORDS) + r")[ \t]*[=:][ \t]*[\"']?([^\s\"'#`]+)")


def documented_values() -> list[tuple[str, str, str]]:
    found = set()
    for path in DOCUMENTS:
        for name, value in _ASSIGNMENT.findall(path.read_text()):
            if value not in {"...", "${" + name} and not value.startswith("$"):
                found.add((str(path.relative_to(ROOT.parent)), name, value))
    return sorted(found)


# Passwords the docs show elsewhere than in an assignment: a command's `--password`, a JSON body's password field.
_PASSWORD_EXAMPLE = re.compile(r"--password[ =]['\"]?([^\s'\"]+)|\"(?:new_|current_)?password\"\s*:\s*\"([^\"]+)\"")
# Placeholders the docs show for any value (`GROQ_API_KEY=your_groq_api_key_here`).
_PLACEHOLDER_VALUE = re.compile(r"\b(your[-_][\w-]+|[\w-]+[-_]here)\b", re.IGNORECASE)


def documented_passwords() -> list[tuple[str, str]]:
    found = set()
    for path in DOCUMENTS:
        text = path.read_text()
        for match in _PASSWORD_EXAMPLE.finditer(text):
            found.add((str(path.relative_to(ROOT.parent)), match.group(1) or match.group(2)))
        for line in text.splitlines():
            if "=" in line:  # a placeholder stands for a value
                for value in _PLACEHOLDER_VALUE.findall(line.partition("=")[2]):
                    found.add((str(path.relative_to(ROOT.parent)), value))
    return sorted(found)


def test_the_scan_finds_the_docs_example_passwords_and_placeholders():
    values = {value for _, value in documented_passwords()}
    assert {"a-long-password", "newsecurepass", "admin123", "your_groq_api_key_here"} <= values


@pytest.mark.parametrize(("document", "value"), documented_passwords())
def test_every_password_and_placeholder_in_the_docs_is_refused_as_the_default_admin_password(document, value):
    assert is_weak_default_admin_password(value), f"{document}: {value} would be accepted as DEFAULT_ADMIN_PASSWORD"


@pytest.mark.parametrize("value", ["a-long-password", "newsecurepass", "your_groq_api_key_here"])
def test_the_docs_examples_stop_production_startup_as_the_default_admin_password(value):
    result = manage_check(DEFAULT_ADMIN_PASSWORD=value)

    assert result.returncode != 0
    assert "DEFAULT_ADMIN_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not SEED.exists(), reason="the FastAPI ChatGroq API's README (shared/seed) is not on this machine")
def test_the_scan_finds_the_fastapi_readmes_examples():
    names = {name for _, name, _ in documented_values()}
    assert {"SECRET_KEY", "DEFAULT_ADMIN_PASSWORD"} <= names


@pytest.mark.parametrize(("document", "name", "value"), documented_values())
def test_every_value_in_the_docs_stops_production_startup(document, name, value):
    refused = is_known_default_password(value) if name in PASSWORDS else secret_problem(value) is not None
    assert refused, f"{document}: {name}={value} would be accepted with DEBUG off"

    result = manage_check(**{name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["django-insecure-" + "x1y2z3" * 8, "ab" * 20, "0123456789" * 4])
def test_well_known_weak_secret_keys_stop_production_startup(value):
    result = manage_check(SECRET_KEY=value)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_accepts_the_example_values():
    result = manage_check(
        DEBUG="true",
        SECRET_KEY="change-me-to-a-random-string-of-at-least-32-characters",
        DEFAULT_ADMIN_PASSWORD="change-me-too-12-chars",
    )
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_the_example_values_the_docker_docs_once_showed():
    example = {
        "SECRET_KEY": "change-me-to-a-random-string-of-at-least-32-characters",
        "DEFAULT_ADMIN_PASSWORD": "change-me-too-12-chars",
    }
    env = {**server_env(**example), "DJANGO_SETTINGS_MODULE": "chatbot_project.settings", "DEBUG": "false"}

    result = subprocess.run(server_command(0), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr + result.stdout


@pytest.fixture
def admin_on_admin123():
    return admin_create(username="admin", password="admin123", check_password=False)


def test_an_admin_on_a_known_default_password_stops_production_startup(admin_on_admin123):
    with pytest.raises(CommandError, match="'admin' still have a well-known default password"):
        call_command("ensureadmin")


def test_the_documented_override_lets_it_start(admin_on_admin123, settings):
    settings.ALLOW_KNOWN_ADMIN_PASSWORDS = True
    call_command("ensureadmin")


def test_debug_lets_it_start(admin_on_admin123, settings):
    settings.DEBUG = True
    assert admin_startup_check() is None


def test_an_admin_from_before_the_flag_is_checked_once_and_remembered(admin_on_admin123):
    key = redis_admin_key(admin_on_admin123.id, "admin")
    redis_client().hdel(key, "known_default")

    with pytest.raises(CommandError):
        call_command("ensureadmin")
    assert redis_client().hget(key, "known_default") == b"1"


def test_gunicorn_refuses_to_start_with_an_admin_on_admin123(admin_on_admin123):
    result = subprocess.run(server_command(0), cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "changeadminpassword" in result.stderr + result.stdout


def test_a_known_default_cannot_be_set_as_a_new_password(alice_client):
    body = {"current_password": "alice-password-1", "new_password": "admin123"}
    response = alice_client.post("/admin/change-credentials", body, format="json")
    assert response.status_code == 400
