"""All configuration comes from environment variables (and a local `.env`), read here and nowhere else. A bad value
of one variable stops startup here (the env readers); what one setting requires of another is checked by the system
checks in chatbot_project/checks.py."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from corsheaders.defaults import default_headers as default_cors_headers
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from core.env import env_addresses, env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "2.1.0"

# A local `.env` fills in what the real environment leaves unset; ENV_FILE= (empty) turns it off.
_env_file = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
_in_environment = set(os.environ)
if _env_file:
    load_dotenv(_env_file, override=False)


def _set_by(name: str) -> str:
    """Where a variable's value came from, for messages that name it: the environment, the file, or nowhere ("")."""
    if name in _in_environment:
        return "the environment"
    return str(Path(_env_file).resolve()) if name in os.environ else ""


DEBUG = env_bool("DEBUG", False)
# Named in the warning an instance with DEBUG on gives at start (core/startup.py).
DEBUG_SET_BY = _set_by("DEBUG")

_DEV_SECRET_KEY = "insecure-development-key-do-not-use-in-production-0123456789"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = _DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "core.errors.json_csrf_failure"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "conversations",
    "llm_provider",
    "system",
    "console",
    "chatbot_project.apps.ProjectConfig",  # the configuration's system checks
]

MIDDLEWARE = [
    # First: a worker whose loop or memory is spent refuses new chats before the rest of the stack runs for them.
    "conversations.admission.ChatAdmissionMiddleware",
    # Then: refuses what anonymous traffic may not have before the rest of the stack runs for it.
    "core.anonymous.AnonymousGuardMiddleware",
    "core.metrics.MetricsMiddleware",
    "core.middleware.RequestLogMiddleware",
    "core.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so first to see a response: the cycles of its DRF view ended (core/views.py).
    "core.views.ViewCyclesEndMiddleware",
]

ROOT_URLCONF = "chatbot_project.urls"
WSGI_APPLICATION = "chatbot_project.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Overrides drf-spectacular's ReDoc page, which would load Google Fonts: the docs work offline.
        "DIRS": [BASE_DIR / "chatbot_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "core.browsable.service_title",
            ]
        },
    }
]

# Admins live in Redis; no relational database is used.
DATABASES: dict[str, dict[str, str]] = {}

# Chats one server process answers at once, streams included; more get 503 `server_busy`. A chat in flight waits on
# the upstream in a greenlet of gunicorn's gevent worker, so what bounds them is memory: CHATS_MEMORY_MIB per process,
# at CHAT_MEMORY_KIB each (a worker's memory per chat in flight, with a margin; docs/performance.md).
CHAT_MEMORY_KIB = 100
CHATS_MEMORY_MIB = env_int("CHATS_MEMORY_MIB", 64, minimum=1)
MAX_CHATS_IN_FLIGHT = env_int("MAX_CHATS_IN_FLIGHT", max(1, CHATS_MEMORY_MIB * 1024 // CHAT_MEMORY_KIB), minimum=1)
# A worker takes no new chat while its event loop runs this late (conversations/admission.py): its cores are spent,
# and a chat it took would slow every stream and health probe it holds. 0 takes none (an instance being drained).
CHAT_ADMIT_MAX_LOOP_LAG_MS = env_int("CHAT_ADMIT_MAX_LOOP_LAG_MS", 1000, minimum=0)

# --- Redis ----------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Named by the commands, which may run in a shell with another REDIS_URL than the server's (core/startup.py).
REDIS_URL_SET_BY = _set_by("REDIS_URL")
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "chatbot")
if "{" in REDIS_KEY_PREFIX or "}" in REDIS_KEY_PREFIX:
    # Braces would change the hash tags that keep each script's keys in one Redis Cluster slot.
    raise ImproperlyConfigured(f"REDIS_KEY_PREFIX must not contain braces, got {REDIS_KEY_PREFIX!r}")
REDIS_TIMEOUT_SECONDS = env_float("REDIS_TIMEOUT_SECONDS", 0.5, minimum=0.05, maximum=30)
# Redis Cluster: REDIS_URL names any node (a replica will do), database 0.
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
# Redis Sentinel: the Sentinels find the primary; REDIS_URL gives the data nodes' password and database only.
REDIS_SENTINELS = env_addresses("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER")
REDIS_SENTINEL_PASSWORD = env_str("REDIS_SENTINEL_PASSWORD")
# A chat turn is acknowledged once this many replicas have it (WAIT), where the primary has that many.
REDIS_WAIT_REPLICAS = env_int(
    "REDIS_WAIT_REPLICAS", 1 if REDIS_CLUSTER or REDIS_SENTINELS else 0, minimum=0, maximum=16
)
# How long WAIT may take: within the connection's read timeout, with room for the round trip.
REDIS_WAIT_TIMEOUT_MS = max(1, int(REDIS_TIMEOUT_SECONDS * 1000 / 2))

_redis_options = {
    "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT_SECONDS,
    "SOCKET_TIMEOUT": REDIS_TIMEOUT_SECONDS,
    "CONNECTION_POOL_KWARGS": {
        # Every chat in flight, and every stream's relay beside it, may hold a connection at once, and the requests
        # that are not chats some more: redis-py's default of 100 would refuse some (MaxConnectionsError).
        # Connections open only as they are needed.
        "max_connections": 2 * MAX_CHATS_IN_FLIGHT + 64,
        "health_check_interval": 30,
        # Each pooled connection keeps a read buffer this size for its life, and a stream held uses 1.5 of them (its
        # turn's and its relay's): redis-py's 64 KiB came to 48 KiB of every stream. A turn's replies are a few KiB;
        # a longer one is read in more pieces.
        "socket_read_size": 4 * 1024,
    },
}

# Each topology's connection factory (core/redis_connect.py) reconnects a dead pooled connection once and never
# retries after a timeout.
if REDIS_CLUSTER:
    _redis_topology: dict[str, object] = {"CONNECTION_FACTORY": "core.redis_connect.ClusterConnectionFactory"}
elif REDIS_SENTINELS:
    _redis_topology = {
        "CONNECTION_FACTORY": "core.redis_connect.SentinelMasterConnectionFactory",
        "SENTINELS": REDIS_SENTINELS,
        "SENTINEL_MASTER": REDIS_SENTINEL_MASTER,
        "SENTINEL_KWARGS": {
            "password": REDIS_SENTINEL_PASSWORD or None,
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        },
    }
else:
    _redis_topology = {"CONNECTION_FACTORY": "core.redis_connect.ServerConnectionFactory"}

# --- Conversation memory --------------------------------------------------------------------------
MEMORY_TTL_SECONDS = env_int("MEMORY_TTL_SECONDS", 3600, minimum=1)
# Sessions stored in all, of every admin; MAX_CACHE_SIZE is read when MAX_SESSIONS is not set.
MAX_SESSIONS = env_int("MAX_SESSIONS", env_int("MAX_CACHE_SIZE", 1000, minimum=1), minimum=1)
# By default ten admins at their caps fill the store; a full store refuses new sessions (see conversations/history/).
MAX_SESSIONS_PER_ADMIN = env_int("MAX_SESSIONS_PER_ADMIN", max(1, MAX_SESSIONS // 10), minimum=1, maximum=MAX_SESSIONS)
# Stored /v1/responses kept per session (a chain's or a conversation's); past it the oldest go. Each response stores
# at least its input and its reply, so a session's 200 messages hold at most 100 responses' turns.
MAX_STORED_RESPONSES = env_int("MAX_STORED_RESPONSES", 100, minimum=1, maximum=10_000)
HISTORY_BACKEND = env_choice("HISTORY_BACKEND", "locmem", ("locmem", "redis"))
HISTORY_MAX_MESSAGES = env_int("HISTORY_MAX_MESSAGES", 40, minimum=0)
HISTORY_MAX_TOKENS = env_int("HISTORY_MAX_TOKENS", 8000, minimum=0)
# Fold the turns that no longer fit into a running summary (one more model call when it happens) instead of
# dropping them from what goes upstream.
HISTORY_SUMMARY = env_bool("HISTORY_SUMMARY", False)
HISTORY_SUMMARY_MODEL = env_str("HISTORY_SUMMARY_MODEL", "") or None  # None: the chat's model
HISTORY_SUMMARY_MAX_TOKENS = env_int("HISTORY_SUMMARY_MAX_TOKENS", 512, minimum=16)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 4000, minimum=1)
# One /v1/chat/completions request (SYSTEM_PROMPT and stored history have limits of their own): a stateless client
# resends its whole conversation, so the defaults leave room for what /chat/ sends upstream with its history.
MAX_REQUEST_MESSAGES = env_int("MAX_REQUEST_MESSAGES", 100, minimum=1, maximum=10_000)
MAX_REQUEST_CHARS = env_int("MAX_REQUEST_CHARS", max(64_000, MAX_MESSAGE_CHARS), minimum=MAX_MESSAGE_CHARS)
# Tool definitions and JSON schemas go upstream as prompt tokens (and count in MAX_REQUEST_CHARS); 128 is Groq's limit.
MAX_REQUEST_TOOLS = env_int("MAX_REQUEST_TOOLS", 128, minimum=0, maximum=128)
MAX_TOOLS_CHARS = env_int("MAX_TOOLS_CHARS", 32_000, minimum=0)
MAX_SCHEMA_CHARS = env_int("MAX_SCHEMA_CHARS", 16_000, minimum=0)
SYSTEM_PROMPT = env_str("SYSTEM_PROMPT")
CHAT_SESSION_WAIT_SECONDS = env_float("CHAT_SESSION_WAIT_SECONDS", 30.0, minimum=0.0, maximum=600.0)
STREAM_KEEPALIVE_SECONDS = env_float("STREAM_KEEPALIVE_SECONDS", 15.0, minimum=0.1, maximum=300.0)
# How long the answer to a request with an Idempotency-Key is kept for its retries (per admin, in Redis).
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 86400, minimum=1)

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", **_redis_options, **_redis_topology},
    },
    # Conversation history with HISTORY_BACKEND=locmem; the redis backend keeps it in REDIS_URL instead.
    "history": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "chat-history",
        "TIMEOUT": MEMORY_TTL_SECONDS,
        # The history store bounds its sessions itself; the cache's cull would drop anyone's, so it must never run.
        "OPTIONS": {"MAX_ENTRIES": sys.maxsize},
    },
}

# Browser logins for the browsable API keep their session in Redis too.
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "default"

# --- Admin authentication -------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.AdminUser"
AUTHENTICATION_BACKENDS = ["accounts.backends.RedisAdminBackend"]
DEFAULT_ADMIN_USERNAME = env_str("DEFAULT_ADMIN_USERNAME", "admin")
DEFAULT_ADMIN_PASSWORD = env_str("DEFAULT_ADMIN_PASSWORD", "admin123" if DEBUG else "")
# With DEBUG off, an existing admin whose password is a known default stops startup unless this is set.
ALLOW_KNOWN_ADMIN_PASSWORDS = env_bool("ALLOW_KNOWN_ADMIN_PASSWORDS", False)
BCRYPT_ROUNDS = env_int("BCRYPT_ROUNDS", 12, minimum=4, maximum=16)
# bcrypt hashes running at once on one server, across its gunicorn workers (each one keeps a core busy for its whole
# run); without gunicorn, in one process.
BCRYPT_MAX_CONCURRENT = env_int("BCRYPT_MAX_CONCURRENT", 1, minimum=1)
# The slot files through which the workers share that limit: gunicorn.conf.py sets it (core/host_slots.py).
HOST_SLOTS_DIR = env_str("HOST_SLOTS_DIR") or None
# A login this recent may change its credentials without sending current_password.
RECENT_LOGIN_SECONDS = env_int("RECENT_LOGIN_SECONDS", 300, minimum=0)
ACCESS_TOKEN_EXPIRE_MINUTES = env_int("ACCESS_TOKEN_EXPIRE_MINUTES", 60, minimum=1)
REFRESH_TOKEN_EXPIRE_MINUTES = env_int("REFRESH_TOKEN_EXPIRE_MINUTES", 24 * 60, minimum=1)
JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY", SECRET_KEY)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(minutes=max(REFRESH_TOKEN_EXPIRE_MINUTES, ACCESS_TOKEN_EXPIRE_MINUTES)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ISSUER": env_str("JWT_ISSUER", "chatbot-api"),
    "AUDIENCE": env_str("JWT_AUDIENCE", "chatbot-api"),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "UPDATE_LAST_LOGIN": False,
}

# --- Limits ---------------------------------------------------------------------------------------
# Failed logins allowed per window, per username and per client address, before logins answer 429.
LOGIN_MAX_FAILURES_PER_USERNAME = env_int("LOGIN_MAX_FAILURES_PER_USERNAME", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_IP = env_int("LOGIN_MAX_FAILURES_PER_IP", 20, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 300, minimum=1)
# The audit log (accounts/audit.py): kept this many days, at most this many entries a day in each of its two streams.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 90, minimum=1, maximum=3650)
AUDIT_MAX_ENTRIES_PER_DAY = env_int("AUDIT_MAX_ENTRIES_PER_DAY", 10_000, minimum=100)
# Budget alerts (accounts/budget_alerts.py): a signed POST when a budget's use crosses one of the thresholds.
BUDGET_ALERT_WEBHOOK_URL = env_str("BUDGET_ALERT_WEBHOOK_URL", "")
BUDGET_ALERT_SECRET = env_str("BUDGET_ALERT_SECRET", "")
BUDGET_ALERT_THRESHOLDS = env_list("BUDGET_ALERT_THRESHOLDS", ["50", "80", "100"])
BUDGET_ALERT_TIMEOUT_SECONDS = env_float("BUDGET_ALERT_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60.0)
# The header a trusted reverse proxy sets to the client's address (e.g. X-Forwarded-For, X-Real-IP).
# Unset: the socket's peer address. Never set it without a proxy that overwrites the header.
CLIENT_IP_HEADER = env_str("CLIENT_IP_HEADER")
# Requests per client address per minute that carry no credentials that authenticate, public endpoints included
# (/health/live excepted); 0 turns the limit off.
ANON_REQUESTS_PER_MINUTE = env_int("ANON_REQUESTS_PER_MINUTE", 120, minimum=0)
# Requests without credentials one worker serves at once (core/anonymous.py); more get 503 with Retry-After.
ANON_MAX_CONCURRENT = env_int("ANON_MAX_CONCURRENT", 4, minimum=1)
# ... and a second (0: no such bound), whatever their addresses.
ANON_WORKER_REQUESTS_PER_SECOND = env_int("ANON_WORKER_REQUESTS_PER_SECOND", 50, minimum=0)
# How long such a refusal (429 or 503) waits before it is sent, so that a closed-loop flood slows to its pace.
ANON_REFUSAL_DELAY_SECONDS = env_float("ANON_REFUSAL_DELAY_SECONDS", 1.0, minimum=0.0, maximum=10.0)
# Per admin; 0 turns a limit off.
CHAT_REQUESTS_PER_MINUTE = env_int("CHAT_REQUESTS_PER_MINUTE", 600, minimum=0)
CHAT_MAX_CONCURRENT = env_int("CHAT_MAX_CONCURRENT", 64, minimum=0)
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# The gunicorn worker (server/worker.py): a client has this long to send a request whole, and a write of
# a response waits this long at most for a client that does not read.
REQUEST_READ_TIMEOUT_SECONDS = env_float("REQUEST_READ_TIMEOUT_SECONDS", 20.0, minimum=1.0, maximum=600.0)
RESPONSE_WRITE_TIMEOUT_SECONDS = env_float("RESPONSE_WRITE_TIMEOUT_SECONDS", 10.0, minimum=1.0, maximum=600.0)
# Request bytes one worker holds while requests arrive (they are read whole before a view runs); past it, 503.
REQUEST_BUFFER_BYTES = env_int("REQUEST_BUFFER_BYTES", 64 * 1024 * 1024, minimum=1024)

# --- LLM provider ---------------------------------------------------------------------------------
LLM_PROVIDER = env_choice("LLM_PROVIDER", "chatgroq", ("chatgroq",))
GROQ_API_KEY = env_str("GROQ_API_KEY")
GROQ_BASE_URL = env_str("GROQ_BASE_URL", "https://api.groq.com/openai/v1").rstrip("/")
_groq_url = urlsplit(GROQ_BASE_URL)
if _groq_url.scheme not in ("http", "https") or not _groq_url.hostname:
    raise ImproperlyConfigured(
        f"GROQ_BASE_URL must be an http:// or https:// URL with a host, such as https://api.groq.com/openai/v1; "
        f"got {GROQ_BASE_URL!r}"
    )
GROQ_MODEL_NAME = env_str("GROQ_MODEL_NAME", "openai/gpt-oss-20b")
# Tried in order when the chosen model is gone, rate limited, over capacity, failing or unreachable (after its
# retries, within the same LLM_TIMEOUT_SECONDS).
GROQ_FALLBACK_MODELS = env_list("GROQ_FALLBACK_MODELS", [])
# Models a chat request may pick with `model`; the configured one always.
CHAT_ALLOWED_MODELS = sorted({GROQ_MODEL_NAME, *env_list("CHAT_ALLOWED_MODELS", [])})
# A JSON file of prices per model, `{"<model>": {"input": "0.59", "output": "0.79"}}` in USD per million tokens;
# empty: the defaults in llm_provider/pricing.py (docs/configuration.md lists them and when they were taken).
MODEL_PRICES_FILE = env_str("MODEL_PRICES_FILE")
# Days the usage per UTC day (GET /admin/usage, manage.py usage) is kept.
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90, minimum=1, maximum=3660)
TEMPERATURE = env_float("TEMPERATURE", 0.7, minimum=0.0, maximum=2.0)
MAX_TOKENS = env_int("MAX_TOKENS", 1024, minimum=1, maximum=131072)
LLM_TIMEOUT_SECONDS = env_float("LLM_TIMEOUT_SECONDS", 60.0, minimum=1.0, maximum=600.0)
# What a turn holds in Redis (its session's lock, its admin's slot, budget reservations, an idempotency claim)
# lasts 1.5 x LLM_TIMEOUT_SECONDS plus this unless the turn renews it (conversations.limits.turn_hold_seconds).
TURN_HOLD_MARGIN_SECONDS = env_float("TURN_HOLD_MARGIN_SECONDS", 30.0, minimum=1.0, maximum=600.0)
LLM_CONNECT_TIMEOUT_SECONDS = env_float("LLM_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60.0)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0, maximum=10)
LLM_MAX_TOKENS_PARAM = env_choice("LLM_MAX_TOKENS_PARAM", "auto", ("auto", "max_completion_tokens", "max_tokens"))
LLM_HEALTH_CACHE_SECONDS = env_int("LLM_HEALTH_CACHE_SECONDS", 30, minimum=0)
# Every chat in flight may stream from the upstream at once, on a connection of its own; a few more for what is not
# a chat (the models' list, the health check).
LLM_MAX_CONNECTIONS = env_int("LLM_MAX_CONNECTIONS", MAX_CHATS_IN_FLIGHT + 16, minimum=1)

# --- HTTP, CORS, docs -----------------------------------------------------------------------------
_cors_origins = env_list("CORS_ALLOWED_ORIGINS", [])
# "*" allows any origin, and then never with credentials: the API authenticates with a header anyway.
CORS_ALLOW_ALL_ORIGINS = _cors_origins == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else _cors_origins
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = (*default_cors_headers, "x-session-id", "x-request-id", "idempotency-key")
CORS_EXPOSE_HEADERS = [
    "Retry-After",
    "X-Request-ID",
    "X-Trace-Id",
    "Idempotent-Replayed",
    *(f"x-ratelimit-{what}-{kind}" for kind in ("requests", "tokens") for what in ("limit", "remaining", "reset")),
]

STATIC_URL = "static/"
# WhiteNoise serves the docs UI and browsable API assets straight from the installed packages:
# no collectstatic step, no CDN.
WHITENOISE_USE_FINDERS = True

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind a TLS-terminating proxy, SECURE_PROXY_SSL_HEADER=true trusts its X-Forwarded-Proto header.
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^health"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.RedisJWTAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.AnonymousRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "core.browsable.ExampleBrowsableAPIRenderer",  # pre-fills POST forms with an example body
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.JSONParser",
        "core.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Responses are chosen by the Accept header only; a ?format= parameter is one more thing to fuzz.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ChatGroq Conversational Chatbot API",
    "DESCRIPTION": (
        "A conversational chatbot API in front of Groq's OpenAI-compatible chat API. "
        "Log in with `POST /admin/login`, then press **Authorize** and paste the `access_token`."
    ),
    "VERSION": VERSION,
    "DEFAULT_GENERATOR_CLASS": "core.schema.ViewOwnSchemaGenerator",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
    # One Bearer scheme for a JWT or an API key (accounts/schema.py); the browser session is no credential a
    # Swagger user types in.
    "AUTHENTICATION_WHITELIST": ["accounts.authentication.RedisJWTAuthentication"],
    "ENUM_NAME_OVERRIDES": {
        "ResponseFormatTypeEnum": ["text", "json_object", "json_schema"],
        "FunctionTypeEnum": ["function"],
        "StoredRoleEnum": ["user", "assistant", "tool"],
        "MessageRoleEnum": ["system", "developer", "user", "assistant", "tool"],
    },
    "PREPROCESSING_HOOKS": ["core.schema.document_paths_without_optional_slash"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.add_common_error_responses",
        "conversations.idempotency.document_idempotency",
        "conversations.rate_headers.document_rate_limit_headers",
    ],
}

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "core.log_format.EscapingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "filters": {"tracebacks_only": {"()": "core.log_format.TracebacksOnly"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our own request log replaces Django's, which would log each 5xx a second time; its tracebacks stay.
        "django.request": {"level": "ERROR", "filters": ["tracebacks_only"]},
        # A request for a host not in ALLOWED_HOSTS gets its 400 and our one request line; Django's own report
        # carries a traceback per request, which any client could use to flood the log.
        "django.security.DisallowedHost": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "django.server": {"level": "WARNING"},
        # A line per upstream call would repeat what the request log says; failures are logged by the client.
        "httpcore": {"level": "WARNING"},
    },
}
logging.captureWarnings(True)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Metrics (GET /metrics) -----------------------------------------------------------------------
# Client addresses or networks (CIDR) allowed to scrape; the address is the one CLIENT_IP_HEADER gives.
try:
    METRICS_ALLOWED_NETWORKS = [
        ipaddress.ip_network(item, strict=False) for item in env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS must list IP addresses or networks: {exc}") from None
# Also answers `Authorization: Bearer <METRICS_TOKEN>` from any address, when set.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters long")
