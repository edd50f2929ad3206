"""Real Chromium at 1366x768: what the fourth walk found, each checked where a person sees it
(screenshots under CHARTDESK_SCREENSHOTS when set)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from server.coding import codesets
from tests.support.browser import LAPTOP, browser_sign_in, screenshot
from tests.support.coding import GOOD_CODES
from tests.support.factories import make_encounter, make_user, sign_in
from tests.support.queue import expire

pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


@pytest.fixture(autouse=True, scope="module")
def _code_index() -> None:
    codesets.icd10cm()


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
    browser_sign_in(page, live_server.url, sup, size=LAPTOP)
    page.goto(f"{live_server.url}{path}")
    show = page.get_by_role("button", name="Show")
    link = page.locator(csv)
    expect(link).to_be_visible()
    assert show.evaluate(_LOOK) == link.evaluate(_LOOK)
    screenshot(page, "walk4-" + path.rsplit("/", 1)[-1])


def _coder_at_a_chart(page: Page, url: str) -> int:
    """A coder signed in at laptop size, a chart opened from My work by its `n` key."""
    item = make_encounter(queue="default")
    browser_sign_in(page, url, make_user("ana", "coder", queues=["default"]), size=LAPTOP)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    return item


def test_a_lost_lease_turns_the_status_badge_to_lease_ended(
    page: Page, live_server, backend
) -> None:
    url = live_server.url
    item = _coder_at_a_chart(page, url)
    badge = page.locator("#item-status")
    expect(badge).to_have_text("in progress")
    expire(item)
    dx = page.locator("#dx-lines input[name=dx_code]").first
    dx.fill("J06.9")
    dx.press("Tab")  # the save is refused: 409 lease_expired
    expect(page.locator("#lease")).to_have_text(re.compile(r"^\s*Lease ended"))
    expect(badge).to_have_text("Lease ended")  # not "in progress" beside it
    expect(dx).to_have_value("J06.9")
    # Release and Hold would only answer 409 on a page of their own: the flash offers the way on.
    expect(page.locator("#release")).to_have_count(0)
    expect(page.locator("#hold-form")).to_have_count(0)
    expect(page.locator("#submit-codes")).to_be_disabled()
    expect(page.locator("#flash").get_by_role("button", name="Next chart")).to_be_visible()
    screenshot(page, "walk4-lease-lost-badge")


def test_a_header_countdown_that_runs_out_turns_the_badge_too(
    page: Page, live_server, backend
) -> None:
    url = live_server.url
    _coder_at_a_chart(page, url)
    badge = page.locator("#item-status")
    expect(badge).to_have_text("in progress")
    page.locator("#lease [data-countdown-to]").evaluate(
        "e => e.setAttribute('data-countdown-to', '2000-01-01T00:00:00Z')"
    )
    expect(page.locator("#lease [data-countdown-to]")).to_have_text("expired")
    expect(badge).to_have_text("Lease ended")


def test_a_code_typed_over_does_not_keep_the_old_codes_description(
    page: Page, live_server, backend
) -> None:
    url = live_server.url
    _coder_at_a_chart(page, url)
    dx = page.locator("#dx-lines input[name=dx_code]").first
    title = page.locator("#dx-lines .code-title").first
    dx.fill("J06.9")
    expect(title).to_have_text("Acute upper respiratory infection, unspecified")
    dx.press("Tab")
    dx.fill("ZZZ.99")  # not a code: no description, not J06.9's
    dx.press("Tab")
    expect(page.locator("#code-problems")).to_contain_text("ZZZ.99 is not an ICD-10-CM code")
    expect(title).to_have_text("")
    expect(dx).to_have_value("ZZZ.99")
    expect(dx).to_have_attribute("aria-invalid", "true")  # marked at the field too
    page.reload()  # the saved draft's refused code is marked as the chart opens
    expect(dx).to_have_attribute("aria-invalid", "true")
    dx.fill("J02.9")
    expect(title).to_have_text("Acute pharyngitis, unspecified")
    expect(dx).not_to_have_attribute("aria-invalid", "true")
    screenshot(page, "walk4-code-typed-over")


def test_a_qa_difference_without_a_category_is_shown_with_its_message_in_view(
    page: Page, live_server, backend, make_client
) -> None:
    item = make_encounter(queue="default")
    coder = make_user("tina", "coder", queues=["default"])
    reviewer = make_user("rita", "supervisor")
    api = make_client()
    sign_in(api, coder)
    boss = make_client()
    sign_in(boss, reviewer)
    assert boss.put("/api/v1/queues/default/qa-sample", json={"percent": 100}).is_success
    assert api.post("/api/v1/work/next", json={}).json()["id"] == item
    api.put(f"/api/v1/work/{item}/codes", json=GOOD_CODES)
    assert api.post(f"/api/v1/work/{item}/submit").json()["status"] == "qa_review"
    url = live_server.url
    browser_sign_in(page, url, reviewer, size=LAPTOP)
    page.goto(f"{url}/qa/{item}")
    page.locator("#dx-lines input[name=dx_code]").first.fill("E11.65")
    page.click("#qa-preview")
    page.fill("#difference-1 input[name=finding_comment]", "hyperglycemia documented")
    page.click("#qa-correct")  # no category chosen: 422, the page again
    category = page.locator("#difference-1 select[name=finding_category]")
    expect(category).to_be_focused()
    # At 1366x768 the row sits below the fold: the field and its own message are brought
    # into view, not left cut off under the summary at the top.
    expect(page.locator("#err-finding-1")).to_be_in_viewport(ratio=1)
    expect(category).to_be_in_viewport(ratio=1)
    expect(page.locator("#difference-1 input[name=finding_comment]")).to_have_value(
        "hyperglycemia documented"
    )
    screenshot(page, "walk4-qa-no-category")


def test_a_refused_identity_purpose_is_marked_at_the_picker_and_reveals_nothing(
    page: Page, live_server, backend, make_client
) -> None:
    make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    officer = make_user("olga", "compliance")
    api = make_client()
    sign_in(api, coder)
    item = api.post("/api/v1/work/next", json={}).json()["id"]
    assert api.get(f"/api/v1/work/{item}").status_code == 200  # a view-record with a patient
    url = live_server.url
    browser_sign_in(page, url, officer, size=LAPTOP)
    page.goto(f"{url}/compliance")
    page.fill("input[name=actor]", "ana")
    page.click("#search")
    row = page.locator('#events tr[data-action="view-record"]').first
    picker = page.locator("#events-purpose")
    # A tampered page sends a purpose that is not in the legend.
    picker.evaluate("s => { const o = new Option('BOGUS', 'BOGUS'); s.add(o); s.value = 'BOGUS'; }")
    row.locator("button[data-identity]").click()
    expect(page.locator("#flash [role=alert]")).to_contain_text("is not a purpose of use")
    expect(picker).to_have_attribute("aria-invalid", "true")
    expect(row.locator(".identity")).to_have_count(0)  # nothing revealed
    expect(row.locator("button[data-identity]")).to_be_visible()
    screenshot(page, "walk4-identity-bad-purpose")
    # By keyboard: the picker takes another purpose, and the lookup goes through.
    picker.focus()
    page.keyboard.press("Home")  # the first purpose in the legend
    expect(picker).not_to_have_value("BOGUS")
    expect(picker).not_to_have_attribute("aria-invalid", "true")
    row.locator("button[data-identity]").focus()
    page.keyboard.press("Enter")
    expect(row.locator(".identity")).to_be_focused()
