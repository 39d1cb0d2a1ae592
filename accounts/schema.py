from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme

# One Bearer field in Swagger UI's Authorize dialog takes either credential: both travel as `Authorization: Bearer`,
# so the API key authentication is left out of the schema (settings' AUTHENTICATION_WHITELIST) and named here.
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token from `POST /admin/login`, or an API key (`cgk_...`) from `POST /admin/api-keys`.",
}


class RedisJWTScheme(SimpleJWTScheme):
    """Documents our JWT authentication as the Bearer scheme behind Swagger UI's Authorize button."""

    target_class = "accounts.authentication.RedisJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return BEARER
