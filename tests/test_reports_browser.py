"""Real Chromium: a supervisor reads DNFB and productivity by keyboard, and downloads the CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import browser_sign_in
from tests.support.factories import make_user
from tests.test_reports import _item

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


def test_supervisor_reads_dnfb_and_downloads_it(page: Page, live_server, backend, tmp_path) -> None:
    now = datetime.now(UTC)
    for days, klass in ((1, "outpatient"), (5, "inpatient"), (5, "outpatient"), (45, "inpatient")):
        _item(end=(now - timedelta(days=days)).isoformat()[:16], klass=klass)
    sup = make_user("sue", "supervisor")
    url = live_server.url
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    browser_sign_in(page, url, sup)
    page.click("nav >> text=Reports")
    expect(page).to_have_url(f"{url}/reports/dnfb")
    chart = page.locator("svg#dnfb-chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("role", "img")
    rows = page.locator("#dnfb-buckets tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator('#dnfb-buckets tr[data-bucket="4-7"] td')).to_have_text("2")
    expect(page.locator('#dnfb-buckets tfoot td[data-figure="total"]')).to_have_text("4")
    page.screenshot(path=str(tmp_path / "dnfb.png"), full_page=True)

    # Group by encounter class with the keyboard only.
    page.focus("#dnfb-by select[name=by]")
    page.keyboard.press("ArrowDown")  # queue -> class
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{url}/reports/dnfb?by=class")
    expect(
        page.locator('#dnfb-groups tr[data-group="inpatient"] td[data-figure="total"]')
    ).to_have_text("2")

    with page.expect_download() as info:
        page.click("#dnfb-csv")
    saved = tmp_path / "dnfb.csv"
    info.value.save_as(saved)
    text = saved.read_text()
    assert text.startswith("as_of,group_by,group,bucket,count,charges")
    assert ",class,inpatient,31+,1," in text

    page.click("nav[aria-label=Reports] >> text=Holds and overdue")
    expect(page.locator("svg#holds-chart")).to_be_visible()
    page.click("nav[aria-label=Reports] >> text=Throughput")
    expect(page.locator("svg#throughput-chart")).to_be_visible()
    expect(page.locator("#throughput tbody tr")).to_have_count(30)
    page.screenshot(path=str(tmp_path / "throughput.png"), full_page=True)

    page.click("nav[aria-label=Reports] >> text=Productivity")
    expect(page.locator("svg#productivity-chart")).to_be_visible()
    expect(page.locator("#productivity tbody")).to_contain_text("No charts were submitted")
    assert errors == []
