"""Real Chromium at 1366x768: what the fourth walk found, each checked where a person sees it
(screenshots under CHARTDESK_SCREENSHOTS when set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.factories import Account, fresh_totp, make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def _sign_in(page: Page, url: str, account: Account) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{url}/login")
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.fill("#totp", fresh_totp(account))
    page.click("#sign-in")
    expect(page.locator("#home-title")).to_be_visible()


def _shot(page: Page, name: str) -> None:
    where = os.environ.get("CHARTDESK_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"walk4-{name}.png"))


_LOOK = """e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  return [Math.round(r.height), s.fontSize, s.fontFamily]; }"""


@pytest.mark.parametrize(
    ("path", "csv"),
    [
        ("/reports/denials", "#denials-csv"),
        ("/reports/dnfb", "#dnfb-csv"),
        ("/reports/casemix", "#casemix-csv"),
        ("/reports/productivity", "#productivity-csv"),
    ],
)
def test_a_reports_show_button_is_the_size_of_its_csv_link(
    page: Page, live_server, backend, path: str, csv: str
) -> None:
    sup = make_user("sue", "supervisor")
    _sign_in(page, live_server.url, sup)
    page.goto(f"{live_server.url}{path}")
    show = page.get_by_role("button", name="Show")
    link = page.locator(csv)
    expect(link).to_be_visible()
    assert show.evaluate(_LOOK) == link.evaluate(_LOOK)
    _shot(page, path.rsplit("/", 1)[-1])
