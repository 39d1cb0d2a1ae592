"""docker-compose.yml gives the service every documented variable from `.env`, as Compose applies it: `env_file`
first, `environment` over it."""

from __future__ import annotations

import re

import yaml

from tests.support import ROOT

# What the compose file sets itself: the Redis beside the service, production mode, the port it publishes.
SET_BY_COMPOSE = {"REDIS_URL", "DEBUG", "HOST", "PORT"}


def _documented_variables() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    names = set()
    for cell in re.findall(r"^\| ((?:`[A-Z][A-Z0-9_]*`(?:, )?)+) \|", text, re.MULTILINE):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", cell))
    return names


def _container_environment(dotenv: dict[str, str]) -> dict[str, str]:
    """What the api container's environment holds when `.env` is `dotenv` and the shell sets nothing."""
    api = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    env_files = api.get("env_file", [])
    paths = [entry if isinstance(entry, str) else entry["path"] for entry in env_files]
    environment = dict(dotenv) if ".env" in paths else {}
    for name, value in (api.get("environment") or {}).items():
        environment[name] = re.sub(
            r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", lambda match: dotenv.get(match.group(1), ""), str(value)
        )
    return environment


def test_every_documented_variable_in_env_reaches_the_service():
    documented = _documented_variables()
    assert {"GROQ_BASE_URL", "CHAT_ALLOWED_MODELS", "CLIENT_IP_HEADER", "METRICS_TOKEN"} <= documented
    dotenv = {name: f"value-of-{name}" for name in documented}

    environment = _container_environment(dotenv)

    missing = sorted(name for name in documented - SET_BY_COMPOSE if environment.get(name) != dotenv[name])
    assert not missing, f"documented variables that do not reach the container from .env: {missing}"
    assert environment["DEBUG"] == "false"  # the .env `make run` writes says true
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
