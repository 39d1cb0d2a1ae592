from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class RedisJWTScheme(SimpleJWTScheme):
    """Documents our JWT authentication as the Bearer scheme behind Swagger UI's Authorize button."""

    target_class = "accounts.authentication.RedisJWTAuthentication"
    name = "jwtAuth"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key",
            "description": "An admin's API key (`cgk_...`), from `POST /admin/api-keys` or `manage.py createapikey`.",
        }
