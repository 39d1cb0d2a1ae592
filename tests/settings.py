"""Test settings: the real settings module, fed a test environment. Tests use their own Redis database
(TEST_REDIS_URL) and a key prefix of their own, and delete only keys under that prefix."""

import os
import uuid

from tests.support import free_port

os.environ["ENV_FILE"] = ""
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Each pytest-xdist worker is a test run of its own (the environment it inherits is its controller's); the processes
# a worker starts inherit its PYTEST_XDIST_WORKER and TEST_SETTINGS_WORKER, and with them its prefix and port.
if os.environ.get("PYTEST_XDIST_WORKER", "") != os.environ.get("TEST_SETTINGS_WORKER", ""):
    os.environ["TEST_SETTINGS_WORKER"] = os.environ["PYTEST_XDIST_WORKER"]
    os.environ.pop("TEST_REDIS_KEY_PREFIX", None)
    os.environ.pop("TEST_FAKE_GROQ_PORT", None)
# Subprocesses started by tests inherit the same prefix, so they see the same admins and tokens.
os.environ.setdefault("TEST_REDIS_KEY_PREFIX", f"test-{uuid.uuid4().hex[:10]}")
os.environ["REDIS_KEY_PREFIX"] = os.environ["TEST_REDIS_KEY_PREFIX"]
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
os.environ.setdefault("DEFAULT_ADMIN_PASSWORD", "a-strong-default-password")
os.environ.setdefault("BCRYPT_ROUNDS", "4")
os.environ.setdefault("GROQ_API_KEY", "test-key")
# Never Groq itself: the fake upstream (tests/fake_groq.py) that conftest starts on this port.
os.environ.setdefault("TEST_FAKE_GROQ_PORT", str(free_port()))
os.environ["GROQ_BASE_URL"] = f"http://127.0.0.1:{os.environ['TEST_FAKE_GROQ_PORT']}/openai/v1"
os.environ.setdefault("LLM_MAX_RETRIES", "1")
os.environ.setdefault("LLM_TIMEOUT_SECONDS", "5")
# A test machine's load is not the service's overload: servers the tests start take every chat unless a test says
# otherwise (tests/conversations/test_admission.py).
os.environ.setdefault("CHAT_ADMIT_MAX_LOOP_LAG_MS", "600000")
# Nor is a Redis reply that a loaded machine delays past the default 0.5 s a fault of Redis: the tests wait longer
# (tests/test_faults.py sets the default back for what it measures).
os.environ.setdefault("REDIS_TIMEOUT_SECONDS", "2")
# Refusals of anonymous requests answered at once, no per-second bound on them, and room for the few a test sends at
# once from one address (a test sends its requests as fast as it can): the tests check what the guard answers, not
# how it paces a flood (tests/test_anonymous_guard.py sets the bounds it checks).
os.environ.setdefault("ANON_REFUSAL_DELAY_SECONDS", "0")
os.environ.setdefault("ANON_WORKER_REQUESTS_PER_SECOND", "0")
os.environ.setdefault("ANON_MAX_CONCURRENT", "64")

from chatbot_project.settings import *  # noqa: F403
