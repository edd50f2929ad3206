"""Real Chromium at 1366x768: what the last walk through the pages found, each checked
where a person sees it (screenshots under CHARTDESK_SCREENSHOTS when set)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from server.coding import codesets
from tests.support.browser import LAPTOP, browser_sign_in, screenshot
from tests.support.factories import make_encounter, make_user

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


@pytest.fixture(autouse=True, scope="module")
def _code_index() -> None:
    codesets.icd10cm()


def test_the_key_that_brings_the_chart_back_is_not_typed_into_the_code(
    page: Page, live_server, backend
) -> None:
    item = make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    browser_sign_in(page, url, coder, size=LAPTOP)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    code = page.locator("#dx-lines input[name=dx_code]").first
    expect(code).to_be_focused()
    page.keyboard.type("J06.9")
    # The coder looks away (another window); the chart hides; they come back and press a key.
    page.evaluate("window.dispatchEvent(new Event('blur'))")
    expect(page.locator("body")).to_have_class(re.compile(r"\bprivacy\b"))
    screenshot(page, "walk-privacy-hidden")
    page.keyboard.press("x")
    expect(page.locator("body")).not_to_have_class(re.compile(r"\bprivacy\b"))
    expect(code).to_have_value("J06.9")  # not J06.9x
    expect(code).to_be_focused()
    page.keyboard.type("0")  # from then on keys type as always
    expect(code).to_have_value("J06.90")
    screenshot(page, "walk-privacy-back")


def test_a_failed_bulk_action_stays_on_the_filtered_list(page: Page, live_server, backend) -> None:
    first = make_encounter(queue="default", priority=3)
    make_encounter(queue="default", priority=1)
    sup = make_user("sue", "supervisor")
    url = live_server.url
    browser_sign_in(page, url, sup, size=LAPTOP)
    page.goto(f"{url}/supervise?queue=default&sort=priority&dir=desc")
    page.check(f'input[name=ids][value="{first}"]')
    page.select_option("#bulk-action", "priority")
    page.fill("#bulk-priority", "")
    page.click("#bulk-apply")
    error = page.locator("#supervise-error")
    expect(error).to_have_text(
        "Nothing was changed. The priority is a whole number from -1000 to 1000."
    )
    screenshot(page, "walk-bulk-failed")
    expect(page).to_have_url(f"{url}/supervise?queue=default&sort=priority&dir=desc")
    expect(page.locator("#filters select[name=queue]")).to_have_value("default")
    expect(page.locator('#items th[aria-sort="descending"]')).to_contain_text("Priority")
    expect(page.locator(f'input[name=ids][value="{first}"]')).to_be_checked()
    expect(page.locator("#bulk-action")).to_have_value("priority")
    page.reload()  # a reload shows the list, never posts the form again
    expect(page.locator("#supervise-error")).to_have_count(0)
    expect(page).to_have_url(f"{url}/supervise?queue=default&sort=priority&dir=desc")


def _overlap(page: Page, a: str, b: str) -> bool:
    return bool(
        page.evaluate(
            """([a, b]) => {
              const r = document.querySelector(a).getBoundingClientRect();
              const s = document.querySelector(b).getBoundingClientRect();
              return !(r.bottom <= s.top || s.bottom <= r.top ||
                       r.right <= s.left || s.right <= r.left);
            }""",
            [a, b],
        )
    )


def test_the_queries_filter_sits_above_the_list_at_1366(page: Page, live_server, backend) -> None:
    sup = make_user("sue", "supervisor")
    url = live_server.url
    browser_sign_in(page, url, sup, size=LAPTOP)
    page.goto(f"{url}/queries?status=")
    screenshot(page, "walk-queries")
    assert not _overlap(page, "#query-filter", "#queries")
    assert not _overlap(page, "#query-filter", "h1")
    box = page.locator("#query-filter").bounding_box()
    table = page.locator("#queries").bounding_box()
    assert box is not None
    assert table is not None
    assert box["y"] + box["height"] <= table["y"]
    assert box["x"] + box["width"] <= 1366


def test_a_missing_field_is_named_in_a_plain_sentence_on_the_page(
    page: Page, live_server, backend
) -> None:
    item = make_encounter(queue="default")
    sup = make_user("sue", "supervisor")
    url = live_server.url
    browser_sign_in(page, url, sup, size=LAPTOP)
    page.goto(f"{url}/supervise")
    # The field does not reach the server (as when a page was saved before a field was
    # added): the walk saw "Check the marked fields. Field required" here.
    row = page.locator(f"#item-{item}")
    row.locator("input[name=priority]").evaluate("e => e.removeAttribute('name')")
    row.get_by_role("button", name="Set").click()
    error = page.locator("#supervise-error")
    expect(error).to_have_text("Priority is required.")
    screenshot(page, "walk-plain-error")
    expect(page.get_by_text("Field required")).to_have_count(0)
    expect(page.get_by_text("Input should")).to_have_count(0)
