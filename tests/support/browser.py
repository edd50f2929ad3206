"""Browser-test helpers shared by the Chromium tests."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.factories import Account, fresh_totp


def browser_sign_in(page: Page, url: str, account: Account) -> None:
    """Sign in through the login page (password + TOTP) and wait for the home page."""
    page.goto(f"{url}/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.fill("#totp", fresh_totp(account))
    page.click("#sign-in")
    expect(page.locator("#home-title")).to_be_visible()
