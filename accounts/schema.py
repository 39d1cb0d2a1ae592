from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class RedisJWTScheme(SimpleJWTScheme):
    """Documents our JWT authentication as the Bearer scheme behind Swagger UI's Authorize button."""

    target_class = "accounts.authentication.RedisJWTAuthentication"
    name = "jwtAuth"
