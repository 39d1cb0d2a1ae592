from __future__ import annotations

import io
import re
from http import HTTPStatus

from django.core.management import call_command


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
