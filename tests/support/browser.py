"""Browser-test helpers shared by the Chromium tests."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support.factories import Account, fresh_totp

LAPTOP = {"width": 1366, "height": 768}  # the screen the walks check every page at


def browser_sign_in(
    page: Page, url: str, account: Account, *, size: dict[str, int] | None = None
) -> None:
    """Sign in through the login page (password + TOTP) and wait for the home page;
    `size`: set the window first (LAPTOP for the walks)."""
    if size is not None:
        page.set_viewport_size(size)  # type: ignore[arg-type]
    page.goto(f"{url}/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.fill("#totp", fresh_totp(account))
    page.click("#sign-in")
    expect(page.locator("#home-title")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    """Save the page as `name`.png under CHARTDESK_SCREENSHOTS, when it is set."""
    where = os.environ.get("CHARTDESK_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"))
