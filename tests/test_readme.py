"""The docs cannot drift from the service: every `curl` example in README.md and docs/*.md (and in the README of
the FastAPI ChatGroq API this API follows, shared/seed, when present) names a route and a method the service
has, and, run as written against a fresh admin `admin` / `admin123` and the fake upstream, answers neither 404
nor 405 (ours: no error at all). docs/api.md keeps every example of that README, and docs/configuration.md
lists every variable the service reads and every variable of that README."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import resolve
from rest_framework.test import APIClient

from accounts.services import admin_create

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT.parent / "shared" / "seed" / "README.md"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *([SEED] if SEED.exists() else [])]

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_CURL = re.compile(r"(?<![\w./-])curl\s")
# curl's options that take no value; any other option in an example fails the test, so that it gets handled here.
_FLAGS = {"-s", "-S", "-sS", "-N", "-i", "-v", "-f", "-L", "--silent", "--no-buffer", "--include", "--fail"}
_VALUE_OPTIONS = {"-X", "--request", "-H", "--header", "-d", "--data", "--data-raw", "--data-binary"}
# Where the docs say `YOUR_TOKEN`, `SESSION_ID` and so on, the test puts real values (see `live`).
_PLACEHOLDER = re.compile(
    r"YOUR_REFRESH_TOKEN|YOUR_TOKEN|\$METRICS_TOKEN|\$API_KEY|\$TOKEN|SESSION_ID|KEY_ID|RESPONSE_ID|CONVERSATION_ID"
    r"|ITEM_ID"
)
_UNFILLED = re.compile(r"\$\w+|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


@dataclass(frozen=True)
class Example:
    source: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"


def _command_at(block: str, start: int) -> str:
    """The shell command from `curl` on: up to an unquoted newline (a backslash continues the line), pipe, `;`,
    `&`, `)` or comment."""
    quote, i, out = None, start, []
    while i < len(block):
        char = block[i]
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "\\" and i + 1 < len(block):
            out.append(" " if block[i + 1] == "\n" else block[i : i + 2])
            i += 2
            continue
        elif char in "\n|;&)" or (char == "#" and (not out or out[-1].isspace())):
            break
        out.append(char)
        i += 1
    return "".join(out)


def _parse(command: str, source: str) -> Example:
    tokens = shlex.split(command)
    method, url, body, headers = None, None, None, {}
    rest = iter(tokens[1:])
    for token in rest:
        if token in _VALUE_OPTIONS:
            value = next(rest)
            if token in ("-X", "--request"):
                method = value.upper()
            elif token in ("-H", "--header"):
                name, _, header_value = value.partition(":")
                headers[name.strip().lower()] = header_value.strip()
            else:
                body = value
        elif token.startswith("-"):
            assert token in _FLAGS, f"{source}: curl option {token} is not understood by tests/test_readme.py"
        else:
            assert url is None, f"{source}: two URLs in one curl command"
            url = token
    assert url, f"{source}: a curl command without a URL"
    return Example(source, method or ("POST" if body is not None else "GET"), url, headers, body)


def examples_in(document: Path) -> list[Example]:
    text = document.read_text()
    name = str(document.relative_to(ROOT.parent if document == SEED else ROOT))
    found = []
    for fence in _FENCE.finditer(text):
        block = fence.group(1)
        for curl in _CURL.finditer(block):
            line = text.count("\n", 0, fence.start(1) + curl.start()) + 1
            found.append(_parse(_command_at(block, curl.start()), f"{name}:{line}"))
    return found


EXAMPLES = [example for document in DOCUMENTS for example in examples_in(document)]


def _allowed_methods(view: object) -> set[str] | None:
    """The methods a resolved view answers: a viewset's actions, or the handlers of a (DRF or Django) class."""
    actions = getattr(view, "actions", None)
    if actions:
        return {method.upper() for method in actions}
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if view_class is None:
        return None
    return {method.upper() for method in view_class.http_method_names if hasattr(view_class, method)}


def test_the_docs_have_curl_examples():
    sources = {example.source.split(":")[0] for example in EXAMPLES}
    assert {"README.md", "docs/api.md", "docs/operations.md"} <= sources
    assert len(EXAMPLES) >= 30


@pytest.fixture
def live(settings) -> dict[str, str]:
    """What the examples' placeholders stand for: the default admin logged in, one of its API keys, a metrics
    token, a stored response, a conversation and its item."""
    settings.METRICS_TOKEN = "metrics-token-of-the-docs-test"
    admin_create(username="admin", password="admin123", check_password=False)
    client = APIClient()
    tokens = client.post("/admin/login", {"username": "admin", "password": "admin123"}, format="json").json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    key = client.post("/admin/api-keys", {"name": "docs"}, format="json").json()
    response = client.post("/v1/responses", {"model": settings.CHAT_ALLOWED_MODELS[0], "input": "Hi"}, format="json")
    first_item = {"type": "message", "role": "user", "content": "Hi"}
    conversation = client.post("/v1/conversations", {"items": [first_item]}, format="json")
    items = client.get(f"/v1/conversations/{conversation.json()['id']}/items").json()
    return {
        "RESPONSE_ID": response.json()["id"],
        "CONVERSATION_ID": conversation.json()["id"],
        "ITEM_ID": items["data"][0]["id"],
        "YOUR_TOKEN": tokens["access_token"],
        "$TOKEN": tokens["access_token"],
        "YOUR_REFRESH_TOKEN": tokens["refresh_token"],
        "SESSION_ID": client.get("/admin/sessions").json()["sessions"][0]["id"],
        "$API_KEY": key["key"],
        "KEY_ID": key["id"],
        "$METRICS_TOKEN": settings.METRICS_TOKEN,
    }


def _filled(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda match: values[match.group()], text)


def _run(example: Example, values: dict[str, str]) -> int:
    """Checks the route and the method, then sends the example as written (placeholders filled in); its status."""
    path = _filled(example.path, values)
    headers = {name: _filled(value, values) for name, value in example.headers.items()}
    # Looked for in the example as written: a filled-in token may hold anything, `LB_L` included.
    leftover = _UNFILLED.findall(_PLACEHOLDER.sub("", f"{example.path} {example.headers.get('authorization', '')}"))
    assert not leftover, f"{example.source}: unknown placeholder {leftover}; add it to tests/test_readme.py"

    match = resolve(path)
    assert match.url_name and not match.url_name.endswith("not-found"), f"{example.source}: no route for {path}"
    allowed = _allowed_methods(match.func)
    assert allowed is None or example.method in allowed, f"{example.source}: {path} allows only {sorted(allowed)}"

    # An example for another host (api.example.com) is a request from outside; localhost ones come from loopback.
    remote = "127.0.0.1" if example.host in _LOCAL_HOSTS else "203.0.113.7"
    client = APIClient(REMOTE_ADDR=remote)
    extra = {
        f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items() if name != "content-type"
    }
    body = _filled(example.body, values) if example.body is not None else ""
    content_type = headers.get("content-type", "application/json" if example.body is not None else None)
    response = client.generic(example.method, path, body, content_type=content_type, **extra)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    return response.status_code


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.source} {e.method} {e.path}" for e in EXAMPLES])
def test_every_curl_example_resolves_to_a_route_and_method(example: Example, live: dict[str, str]):
    session = re.match(r"/chat/sessions/([^/]+)", example.path)
    if session and session.group(1) != "import":
        # The chat example before it in the docs created this session.
        client = APIClient(HTTP_AUTHORIZATION=f"Bearer {live['YOUR_TOKEN']}")
        body = {"session_id": session.group(1), "message": "Hi"}
        assert client.post("/chat/", body, format="json").status_code == 200

    status = _run(example, live)

    assert status not in (404, 405), f"{example.source}: {example.method} {example.path} answered {status}"
    if "authorization" in example.headers:
        assert status not in (401, 403), f"{example.source}: the example's credentials were refused ({status})"
    # Every example works as written, the FastAPI README's included.
    assert status < 400, f"{example.source}: {example.method} {example.path} answered {status}"


def _routes(examples: list[Example]) -> set[tuple[str, str]]:
    return {(example.method, example.path) for example in examples}


@pytest.mark.skipif(not SEED.exists(), reason="the FastAPI ChatGroq API's README (shared/seed) is not on this machine")
def test_the_api_guide_keeps_every_example_of_the_fastapi_readme():
    missing = _routes(examples_in(SEED)) - _routes(examples_in(ROOT / "docs" / "api.md"))
    assert not missing, f"docs/api.md has no curl example for {sorted(missing)}"


def _variables_read() -> set[str]:
    names = set()
    for source in (ROOT / "chatbot_project" / "settings.py", ROOT / "gunicorn.conf.py"):
        text = source.read_text()
        names |= set(re.findall(r"\benv_\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", text))
        names |= set(re.findall(r"environ\.get\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", text))
    return names


def test_the_configuration_page_lists_every_variable_the_service_reads():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))
    read = _variables_read()
    assert {"SECRET_KEY", "REDIS_URL", "GROQ_API_KEY", "WEB_CONCURRENCY"} <= read
    assert not read - documented, f"docs/configuration.md does not list {sorted(read - documented)}"


@pytest.mark.skipif(not SEED.exists(), reason="the FastAPI ChatGroq API's README (shared/seed) is not on this machine")
def test_the_configuration_page_lists_every_variable_of_the_fastapi_readme():
    seed_variables = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", SEED.read_text(), re.M))
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))
    assert len(seed_variables) >= 10
    assert not seed_variables - documented, f"docs/configuration.md does not list {sorted(seed_variables - documented)}"
