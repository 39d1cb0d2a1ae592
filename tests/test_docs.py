from __future__ import annotations

import io
import json
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path

import httpx
from django.core.management import call_command
from drf_spectacular.settings import spectacular_settings

from tests.server import running_server


def test_schema_generation_emits_no_warning():
    # --fail-on-warn turns every drf-spectacular warning or error into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=io.StringIO())


def test_openapi_json_documents_bearer_auth_and_every_seed_path(api):
    schema = api.get("/openapi.json").json()

    jwt_auth = schema["components"]["securitySchemes"]["jwtAuth"]
    assert (jwt_auth["type"], jwt_auth["scheme"], jwt_auth["bearerFormat"]) == ("http", "bearer", "JWT")
    for path in [
        "/admin/login",
        "/admin/logout",
        "/admin/info",
        "/admin/change-credentials",
        "/admin/sessions",
        "/health",
        "/info",
    ]:
        assert path in schema["paths"], path


def test_every_operation_documents_its_responses(api):
    schema = api.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("responses"), f"{method} {path}"
            assert operation.get("summary"), f"{method} {path}"


def assets_of(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)


def test_docs_and_redoc_load_every_asset_locally(api):
    for page in ("/docs", "/redoc"):
        response = api.get(page)
        assert response.status_code == HTTPStatus.OK
        html = response.content.decode()
        assert "cdn" not in html.lower()
        assets = assets_of(html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/static/"), asset
            assert api.get(asset).status_code == HTTPStatus.OK, asset


def test_the_login_operation_describes_this_service_not_simplejwt(api):
    login = api.get("/openapi.json").json()["paths"]["/admin/login"]["post"]
    assert "Authorize" in login["description"]
    assert "JSON web token pair" not in login["description"]


def test_schema_generations_at_once_describe_every_view_alike():
    def generate(_: int) -> str:
        try:
            schema = spectacular_settings.DEFAULT_GENERATOR_CLASS().get_schema(request=None, public=True)
        except Exception as exc:  # a generation that reads another thread's view may fail, or describe it wrong
            return repr(exc)
        return json.dumps(schema, sort_keys=True)

    # One first, alone: drf-spectacular loads its extensions lazily, in a first-use race of its own.
    alone = generate(0)
    with ThreadPoolExecutor(8) as pool:
        together = set(pool.map(generate, range(16)))

    assert together == {alone}


def test_concurrent_requests_for_the_schema_all_get_the_same_document():
    # Room for all 16 at once in a worker: ANON_MAX_CONCURRENT would answer the excess 503 (test_anonymous_guard.py).
    with tempfile.NamedTemporaryFile() as log, running_server(log=log, ANON_MAX_CONCURRENT="32") as url:
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: httpx.get(f"{url}/openapi.json", timeout=60), range(32)))
        identity = {"Accept-Encoding": "identity"}
        plain = httpx.get(f"{url}/openapi.json", headers=identity)
        head = httpx.head(f"{url}/openapi.json", headers=identity)
        server_log = Path(log.name).read_text()

    assert [r.status_code for r in responses] == [HTTPStatus.OK] * 32
    assert len({r.content for r in responses}) == 1
    assert "Traceback" not in server_log
    # httpx asks for gzip: the bodies above were sent compressed; without gzip the same document comes plain.
    assert responses[0].headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert plain.content == responses[0].content
    assert (head.status_code, head.content) == (HTTPStatus.OK, b"")
    assert head.headers["Content-Length"] == str(len(plain.content))
