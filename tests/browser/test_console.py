"""The console at /console/ in a real browser: sign in, chat with streamed replies, the sidebar, regenerate, API
keys, status, sign out; untrusted model output runs nothing; CSRF; a revoked login ends an open console."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.management import call_command

from accounts.key_rules import KeyRules
from accounts.selectors import api_key_list
from accounts.services import api_key_create, api_key_rules_set
from tests.browser.conftest import ARTIFACTS
from tests.support import ALICE_PASSWORD, record_usage

PHONE = {"width": 375, "height": 740}
MODELS = ("openai/gpt-oss-20b", "llama-3.3-70b-versatile")
MARKDOWN_REPLY = "Here is some **Markdown**:\n\n- a list\n- of items\n\n```python\nprint('hello, world')\n```"


def sign_in(page, server_url: str) -> None:
    page.goto(f"{server_url}/console/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(ALICE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="New chat").wait_for()
    page.wait_for_load_state()  # the chat page's script runs before a key press is sent to it


def send(page, text: str) -> None:
    page.wait_for_load_state()  # on a page just opened, Enter sends only once the chat's script has run
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")
    page.locator("#chat-status", has_text="Reply complete.").wait_for(timeout=30_000)


def last_reply(page):
    return page.locator("li.message.assistant .content").last


def test_sign_in_chat_streamed_continue_after_reload_regenerate_and_sign_out(
    page, server_url, alice, fake_groq, outside_requests
):
    fake_groq.configure(chunk_delay=0.05)
    sign_in(page, server_url)
    # The model picker lists the models a chat may use, the default first.
    assert page.get_by_label("Model").locator("option").count() >= 1

    page.get_by_label("Message").fill("Hello **console** with several words to stream")
    page.get_by_role("button", name="Send").click()
    # Streamed: part of the reply is on the page before the whole of it.
    reply = last_reply(page)
    page.wait_for_function(
        "el => el.textContent.startsWith('Echo') && !el.textContent.includes('stream')", arg=reply.element_handle()
    )
    page.locator("#chat-status", has_text="Reply complete.").wait_for(timeout=30_000)
    assert reply.inner_text() == "Echo: Hello console with several words to stream"
    assert reply.locator("strong", has_text="console").count() == 1  # rendered as Markdown
    assert "/console/chat/" in page.url

    fake_groq.configure(chunk_delay=0.0)
    send(page, "Second")
    assert last_reply(page).inner_text() == "Echo: Second"

    # After a reload the sidebar names the session by its first words and opens it where it left off.
    page.goto(f"{server_url}/console/")
    link = page.locator("#sessions a", has_text="Hello **console** with several")
    link.click()
    page.locator("li.message.user", has_text="Second").wait_for()
    assert page.locator("li.message").count() == 4
    send(page, "Third")
    assert page.locator("li.message").count() == 6

    page.get_by_role("button", name="Regenerate").click()
    page.locator("#chat-status", has_text="Reply complete.").wait_for(timeout=30_000)
    assert page.locator("li.message").count() == 6
    assert last_reply(page).inner_text() == "Echo: Third"
    assert fake_groq.chat_requests()[-1]["json"]["messages"][-1]["content"] == "Third"

    page.get_by_role("button", name="Edit last message").click()
    page.get_by_label("Message").fill("Third, edited")
    page.get_by_label("Message").press("Enter")
    page.locator("#chat-status", has_text="Reply complete.").wait_for(timeout=30_000)
    page.reload()
    assert page.locator("li.message").count() == 6
    assert last_reply(page).inner_text() == "Echo: Third, edited"

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.goto(f"{server_url}/console/keys")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert outside_requests == []


def test_a_reply_with_html_script_and_javascript_links_runs_nothing(page, server_url, alice, fake_groq):
    dialogs, errors = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, server_url)
    fake_groq.configure(
        reply=(
            "Look: <script>window.pwned = 1; alert('script')</script> and "
            "<img src=x onerror=\"window.pwned = 2; alert('img')\"> and "
            "[a link](javascript:window.pwned=3;alert('link')) and <a href=\"javascript:alert('raw')\">raw</a>\n\n"
            "```html\n<script>alert('code')</script>\n```"
        )
    )
    send(page, "Say something dangerous")
    reply = last_reply(page)
    reply.locator("a", has_text="a link").click()  # a javascript: link lost its href: clicking it does nothing
    page.reload()
    last_reply(page).locator("pre code").wait_for()

    reply = last_reply(page)
    assert reply.locator("script, img, [onerror]").count() == 0
    assert reply.locator("a[href^='javascript' i]").count() == 0
    assert "<script>alert('code')</script>" in reply.locator("pre code").inner_text()  # shown, as text
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    assert errors == []


def test_api_keys_create_shows_the_secret_once_and_revoke_asks_first(page, server_url, alice, outside_requests):
    sign_in(page, server_url)
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("nightly report")
    page.get_by_label("Tokens").fill("5000")
    page.get_by_role("button", name="Create key").click()

    secret = page.get_by_label("The new API key").input_value()
    assert secret.startswith("cgk_")
    page.get_by_role("button", name="Copy").click()
    page.locator("#copy-status", has_text="Cop").wait_for()
    row = page.locator("#keys-table tbody tr", has_text="nightly report")
    assert "0 / 5000 tokens a day" in row.inner_text()

    page.goto(f"{server_url}/console/keys")
    assert secret not in page.content()
    assert page.get_by_label("The new API key").count() == 0

    page.locator("#keys-table tbody tr", has_text="nightly report").get_by_role("link", name="Revoke").click()
    page.get_by_role("heading", name="Revoke “nightly report”?").wait_for()
    page.get_by_role("button", name="Revoke the key").click()
    page.get_by_role("heading", name="API keys").wait_for()
    assert page.locator("#keys-table tbody tr", has_text="nightly report").count() == 0
    assert outside_requests == []


def test_a_form_posted_without_the_csrf_token_is_refused(page, server_url, alice):
    sign_in(page, server_url)
    page.goto(f"{server_url}/console/keys")
    page.evaluate("document.querySelectorAll('input[name=csrfmiddlewaretoken]').forEach(e => e.remove())")
    page.get_by_label("Name").fill("forged")
    with page.expect_response(f"{server_url}/console/keys/create") as answer:
        page.get_by_role("button", name="Create key").click()
    assert answer.value.status == 403
    page.goto(f"{server_url}/console/keys")
    assert page.locator("#keys-table tbody tr", has_text="forged").count() == 0

    # The streaming endpoint too: a fetch with the cookie but no token starts no chat.
    status = page.evaluate(
        """async () => (await fetch('/console/api/chat', {method: 'POST', headers: {'Content-Type':
        'application/json'}, body: JSON.stringify({message: 'forged'})})).status"""
    )
    assert status == 403


def test_revoketokens_ends_an_open_console_at_its_next_request(page, server_url, alice, fake_groq):
    sign_in(page, server_url)
    call_command("revoketokens", "alice", stdout=io.StringIO())

    # The open chat page's next message is refused and the page goes to the sign-in form.
    page.get_by_label("Message").fill("Still there?")
    page.get_by_label("Message").press("Enter")
    page.get_by_role("heading", name="Sign in").wait_for()
    page.goto(f"{server_url}/console/status")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert fake_groq.chat_requests() == []


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_fits_and_is_saved_as_a_screenshot(browser, server_url, alice, fake_groq, width):
    viewport = {"width": 1280, "height": 900} if width == "desktop" else PHONE
    context = browser.new_context(viewport=viewport, is_mobile=width == "phone")
    context.set_default_timeout(15_000)
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(f"{server_url}/console/sign-in")
        shot(page, f"console_sign_in_{width}")
        sign_in(page, server_url)
        ruled, _ = api_key_create(admin_id=alice.id, name="nightly build")  # the keys page's rule columns, filled
        expires = datetime.combine(datetime.now(UTC).date() + timedelta(days=180), datetime.min.time(), tzinfo=UTC)
        rules = KeyRules(("openai/gpt-oss-20b",), requests_per_minute=30, tokens_per_minute=20_000, expires_at=expires)
        api_key_rules_set(key_id=ruled.id, admin_id=alice.id, rules=rules)
        fake_groq.configure(
            reply="Here is some **Markdown**:\n\n- a list\n- of items\n\n```python\nprint('hello, world')\n```"
        )
        send(page, "Show me some Markdown with a code block")
        send(page, "And a second question")
        page.reload()  # as it is opened from the sidebar: with its export and delete buttons
        page.locator("li.message.assistant pre code").last.wait_for()
        shot(page, f"console_chat_{width}")
        page.goto(f"{server_url}/console/keys")
        page.get_by_label("Name").fill("reporting")
        page.get_by_label("Tokens").fill("100000")
        page.get_by_role("button", name="Create key").click()
        page.get_by_label("The new API key").wait_for()
        shot(page, f"console_keys_{width}")
        page.goto(f"{server_url}/console/status")
        shot(page, f"console_status_{width}")
        page.goto(f"{server_url}/console/audit")
        shot(page, f"console_audit_{width}")
        seed_a_month_of_usage(alice.id)
        page.goto(f"{server_url}/console/usage")
        shot(page, f"console_usage_{width}")
        page.goto(f"{server_url}/console/keys")
        page.get_by_role("link", name="Change reporting").click()
        page.get_by_role("heading", name="Change “reporting”").wait_for()
        shot(page, f"console_key_change_{width}")
    finally:
        context.close()


def test_the_audit_log_page_filters_the_admins_entries_by_action(page, server_url, alice):
    sign_in(page, server_url)
    page.goto(f"{server_url}/console/keys")
    page.get_by_label("Name").fill("audited")
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("The new API key").wait_for()

    page.get_by_role("link", name="Audit log").click()
    page.wait_for_url(f"{server_url}/console/audit")  # the rows are read at once, not waited for
    rows = page.locator("#audit-table tbody tr")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.action)") == ["api_key.created", "login.succeeded"]
    page.get_by_label("Action").select_option("login.succeeded")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**action=login.succeeded**")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.action)") == ["login.succeeded"]
    assert page.get_by_label("Action").input_value() == "login.succeeded"  # the filter stays as chosen


def test_a_keys_budget_bar_moves_after_a_chat_and_its_tokens_show_in_the_usage_chart(page, server_url, alice):
    sign_in(page, server_url)
    page.goto(f"{server_url}/console/keys")
    page.get_by_label("Name").fill("metered")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("The new API key").input_value()
    page.get_by_role("link", name="Change metered").click()
    page.get_by_role("heading", name="Change “metered”").wait_for()  # the keys page has a Tokens field too
    page.get_by_label("Tokens", exact=True).fill("100000")
    page.get_by_role("button", name="Save").click()
    bar = page.locator("#keys-table meter").first
    assert bar.get_attribute("value") == "0" and bar.get_attribute("max") == "100000"

    answer = httpx.post(
        f"{server_url}/chat/", json={"message": "count me in"}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]["total_tokens"]
    page.reload()
    assert int(bar.get_attribute("value")) == used > 0

    page.get_by_role("link", name="Usage").click()
    page.wait_for_url(f"{server_url}/console/usage")
    assert int(page.locator("#budgets meter").first.get_attribute("value")) == used
    today = datetime.now(UTC).date().isoformat()
    bars = page.locator("#tokens-by-key rect title")
    assert bars.all_text_contents() == [f"{today} metered: {used}"]
    assert page.locator("#usage-total-tokens").get_attribute("data-tokens") == str(used)
    assert page.locator("#totals-by-key tbody th").all_text_contents() == ["metered"]


def seed_a_month_of_usage(admin_id: str) -> None:
    """A month of use (its days cannot be chatted on in a test), under the admin's keys and its sign-in."""
    today = datetime.now(UTC).date()
    keys = ["", *(key.id for key in api_key_list(admin_id=admin_id))]
    for back in range(30):
        for n, (key_id, model) in enumerate(itertools.product(keys, MODELS)):
            weight = 1 + (back * 7 + n * 3) % 5
            record_usage(
                admin_id, today - timedelta(days=back), key_id, model, 900 * weight, 300 * weight, 260 * weight
            )


def shot(page, name: str) -> None:
    page.wait_for_load_state()  # the page's styles and images in place (the caller waited for the page itself)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], name
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def tab_to(page, selector: str, most: int = 20) -> None:
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reached with the Tab key")


def test_signing_in_and_chatting_with_the_keyboard_only(page, server_url, alice):
    page.goto(f"{server_url}/console/")
    tab_to(page, "input[name=username]")
    page.keyboard.type("alice")
    tab_to(page, "input[name=password]")
    page.keyboard.type(ALICE_PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="New chat").wait_for()
    page.wait_for_load_state()

    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    tab_to(page, "textarea#message")
    page.keyboard.type("Typed, not clicked")
    page.keyboard.press("Enter")
    page.locator("#chat-status", has_text="Reply complete.").wait_for(timeout=30_000)
    assert last_reply(page).inner_text() == "Echo: Typed, not clicked"

    tab_to(page, "button#regenerate")
    page.keyboard.press("Enter")
    page.locator("#chat-status", has_text="Reply complete.").wait_for(timeout=30_000)
    assert page.locator("li.message").count() == 2
