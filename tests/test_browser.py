"""Real Chromium through Playwright: sign in with password + TOTP, sign out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.support.factories import fresh_totp, make_user

# PostgreSQL only: the API tests cover both backends; a browser adds the page, not the DB.
pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_coder_signs_in_sees_home_signs_out_and_old_cookie_is_dead(
    page: Page, live_server, backend
):
    acct = make_user("ana", "coder")
    page.goto(f"{live_server.url}/home")
    expect(page).to_have_url(f"{live_server.url}/login?next=/home")
    page.fill("#username", "ana")
    page.fill("#password", acct.password)
    page.fill("#totp", fresh_totp(acct))
    page.click("#sign-in")
    expect(page.locator("#home-title")).to_have_text("Welcome, ana")
    expect(page.locator("#home-coder")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "chartdesk_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    page.click("#sign-out")
    expect(page).to_have_url(f"{live_server.url}/login")
    # Replaying the old cookie does not get back in.
    page.context.add_cookies(
        [{"name": "chartdesk_session", "value": cookie["value"], "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/home")
    expect(page).to_have_url(f"{live_server.url}/login?next=/home")


def test_wrong_code_shows_an_error_in_the_page(page: Page, live_server, backend):
    acct = make_user("ana", "coder")
    page.goto(f"{live_server.url}/login")
    page.fill("#username", "ana")
    page.fill("#password", acct.password)
    page.fill("#totp", "000000")
    page.click("#sign-in")
    expect(page.locator("#login-error")).to_contain_text("Invalid username, password or code.")


def test_idle_warning_appears_before_sign_out_and_stay_signed_in_keeps_the_session(
    page: Page, monkeypatch, backend, db_url
):
    from server.config import get_settings
    from server.main import create_app
    from tests.conftest import LiveServer

    monkeypatch.setenv("CHARTDESK_SESSION_IDLE_MINUTES", "1")
    monkeypatch.setenv("CHARTDESK_SESSION_WARNING_SECONDS", "58")
    get_settings.cache_clear()
    acct = make_user("ana", "coder")
    with LiveServer(create_app()) as server:
        page.goto(f"{server.url}/login")
        page.fill("#username", "ana")
        page.fill("#password", acct.password)
        page.fill("#totp", fresh_totp(acct))
        page.click("#sign-in")
        expect(page.locator("#home-title")).to_be_visible()
        warning = page.locator("#idle-warning")
        expect(warning).to_be_visible(timeout=8000)
        expect(page.locator("#idle-countdown")).to_have_text(re.compile(r"0:\d\d"))
        page.click("#stay-signed-in")
        expect(warning).to_be_hidden()
        page.reload()
        expect(page.locator("#home-title")).to_be_visible()
