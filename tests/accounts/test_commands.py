from __future__ import annotations

import io
import subprocess
import sys
from http import HTTPStatus

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.admins import admin_get, admin_get_by_username, admin_list
from accounts.services import admin_authenticate
from tests.server import server_env
from tests.support import ALICE_PASSWORD, ROOT, login


def run(*args: str, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def client_for(tokens: dict[str, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    return client


def test_createadmin_with_a_password_option():
    assert "Created admin 'carol'" in run("createadmin", "carol", "--password", "carol-password")
    assert admin_authenticate(username="carol", password="carol-password") is not None


def test_createadmin_reads_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "from-the-environment")
    run("createadmin", "dave")
    assert admin_authenticate(username="dave", password="from-the-environment") is not None


def test_createadmin_without_a_password_and_no_terminal_fails(monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="No password"):
        run("createadmin", "erin")
    assert admin_get_by_username("erin") is None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [("bad name", "long-enough-pw", "Username"), ("frank", "short", "at least 8"), ("alice", "long-enough", "exists")],
)
def test_createadmin_rejects_bad_input(alice, username, password, message):
    with pytest.raises(CommandError, match=message):
        run("createadmin", username, "--password", password)
    assert [a.username for a in admin_list()] == ["alice"]


def test_changeadminpassword_sets_the_password_and_revokes_tokens(alice, alice_client):
    run("changeadminpassword", "alice", "--password", "a-brand-new-one")

    assert admin_authenticate(username="alice", password="a-brand-new-one") is not None
    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def manage(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """manage.py in its own process, on this test run's Redis keys."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=server_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_changeadminpassword_reads_the_password_from_standard_input(alice, alice_client):
    result = manage("changeadminpassword", "alice", "--stdin", stdin="a password from a script\n")

    assert result.returncode == 0, result.stderr
    assert "Changed the password of 'alice'" in result.stdout
    assert admin_authenticate(username="alice", password="a password from a script") is not None
    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def test_createadmin_reads_the_password_from_standard_input(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("carols-password\r\nignored second line\n"))

    run("createadmin", "carol", "--stdin")

    assert admin_authenticate(username="carol", password="carols-password") is not None


def test_an_empty_standard_input_is_refused_and_changes_nothing(alice):
    result = manage("changeadminpassword", "alice", "--stdin", stdin="")

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "CommandError: --stdin: standard input held no password (an empty first line, or nothing)."
    )
    assert admin_authenticate(username="alice", password=ALICE_PASSWORD) is not None


def test_stdin_and_password_cannot_both_be_given(alice):
    result = manage("changeadminpassword", "alice", "--stdin", "--password", "something-long", stdin="x\n")

    assert result.returncode != 0
    assert "not allowed with argument" in result.stderr


def test_changeadminpassword_for_an_unknown_admin_fails():
    with pytest.raises(CommandError, match="No admin named"):
        run("changeadminpassword", "nobody", "--password", "whatever-long")


def test_deleteadmin_deletes_and_revokes(alice, bob, alice_client):
    run("deleteadmin", "alice")

    assert admin_get(alice.id) is None
    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def test_deleteadmin_refuses_the_last_admin_without_force(alice):
    with pytest.raises(CommandError, match="last admin"):
        run("deleteadmin", "alice")
    run("deleteadmin", "alice", "--force")
    assert admin_list() == []


def test_listadmins_lists_them(alice, bob):
    output = run("listadmins")
    assert "alice" in output and "bob" in output and alice.id in output


def test_revoketokens_for_one_admin(alice, bob, alice_client):
    bob_client = client_for(login(APIClient(), "bob", "bob-password-22"))

    assert "Revoked 1 login(s) of 1 admin(s)" in run("revoketokens", "alice")

    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    assert bob_client.get("/admin/info").status_code == HTTPStatus.OK


def test_revoketokens_for_all(alice, bob, alice_client):
    bob_client = client_for(login(APIClient(), "bob", "bob-password-22"))

    run("revoketokens", "--all")

    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    assert bob_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def test_revoketokens_needs_a_target():
    with pytest.raises(CommandError):
        run("revoketokens")


def test_resetadmin_regains_access_and_keeps_the_id(alice, alice_client):
    output = run("resetadmin", "alice", "--generate")

    new_password = output.rsplit(": ", 1)[1].strip()
    assert admin_authenticate(username="alice", password=new_password).id == alice.id
    assert admin_authenticate(username="alice", password=ALICE_PASSWORD) is None
    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def test_resetadmin_creates_the_default_admin_when_missing(settings):
    run("resetadmin", "--password", "a-fresh-password")
    assert admin_authenticate(username=settings.DEFAULT_ADMIN_USERNAME, password="a-fresh-password")


def test_ensureadmin_creates_the_default_admin_once(settings):
    assert "Created the default admin" in run("ensureadmin")
    assert "exist already" in run("ensureadmin")
    assert admin_authenticate(username="admin", password=settings.DEFAULT_ADMIN_PASSWORD) is not None


def test_ensureadmin_refuses_a_weak_default_password_with_debug_off(settings):
    settings.DEBUG = False
    settings.DEFAULT_ADMIN_PASSWORD = "admin123"
    with pytest.raises(CommandError, match="DEFAULT_ADMIN_PASSWORD"):
        run("ensureadmin")
    assert admin_list() == []


def test_ensureadmin_accepts_admin123_with_debug_on(settings, caplog):
    settings.DEBUG = True
    settings.DEFAULT_ADMIN_PASSWORD = "admin123"
    run("ensureadmin")
    assert admin_authenticate(username="admin", password="admin123") is not None
    assert "WEAK password" in caplog.text


def test_commands_fail_clearly_when_redis_is_down(redis_down):
    with pytest.raises(CommandError, match="Redis is not reachable"):
        run("ensureadmin")
