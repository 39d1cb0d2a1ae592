"""A real headless Chromium (Debian's `chromium`, driven by Playwright; no browser download) against the service
under gunicorn. Off CI the tests skip when Chromium is missing; in CI (CI=true) they fail instead, so they never
silently stop running. Each test leaves a screenshot in artifacts/browser/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.server import running_server
from tests.support import ROOT

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts" / "browser"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def why_no_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright cannot be imported ({exc}); make test installs it"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    reason = why_no_browser()
    if reason:
        if in_ci():
            pytest.fail(f"The browser tests must run in CI, but {reason}.")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server_url(browser: object) -> Iterator[str]:
    # Plain HTTP on loopback, as in local development: cookies cannot be Secure-only here.
    with running_server(SECURE_COOKIES="false") as url:
        yield url


@pytest.fixture
def outside_requests() -> list[str]:
    """Every request the page tried to send off this machine (each one blocked)."""
    return []


@pytest.fixture
def page(browser, outside_requests: list[str], request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)

    def only_local(route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
