"""Real Chromium on the screens people sit at all day: automatic sign-out measured from the
person's own input (never from the page's background requests), and errors shown where the
person is looking instead of a stale "ready to submit"."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from server.coding import codesets
from server.config import get_settings
from tests.support.factories import Account, fresh_totp, make_encounter, make_user
from tests.support.queue import expire

# PostgreSQL only: the API tests cover both backends; a browser adds the page, not the DB.
pytestmark = [pytest.mark.browser, pytest.mark.pg_only]


@pytest.fixture(autouse=True, scope="module")
def _code_index() -> None:
    """The server (in this process) builds the ICD-10-CM index at startup outside tests."""
    codesets.icd10cm()


def _sign_in(page: Page, url: str, account: Account, *, path: str = "/login") -> None:
    page.goto(f"{url}{path}")
    _fill_sign_in(page, account)
    expect(page.locator("#home-title")).to_be_visible()


def _fill_sign_in(page: Page, account: Account) -> None:
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.fill("#totp", fresh_totp(account))
    page.click("#sign-in")


@pytest.fixture
def one_minute_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign out after one idle minute, warning 20 seconds before."""
    monkeypatch.setenv("CHARTDESK_SESSION_IDLE_MINUTES", "1")
    monkeypatch.setenv("CHARTDESK_SESSION_WARNING_SECONDS", "20")
    get_settings.cache_clear()


def _idle_out(page: Page) -> None:
    """Let the page's clock run as if nobody touched anything (background requests go on)."""
    page.clock.fast_forward("00:45")
    expect(page.locator("#idle-warning")).to_be_visible()
    page.clock.fast_forward("00:20")


@pytest.mark.usefixtures("one_minute_idle")
def test_an_unattended_chart_signs_out_and_comes_back_after_sign_in(
    page: Page, live_server, backend
) -> None:
    item = make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    page.clock.install()
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    expect(page.locator("#documents")).to_be_visible()
    # The lease heartbeat fires every minute meanwhile; it is not the person.
    _idle_out(page)
    expect(page).to_have_url(re.compile(rf"/login\?expired=1&next=%2Fwork%2F{item}$"))
    expect(page.locator("#documents")).to_have_count(0)
    # The server ended the session too: the old page cannot be fetched with it.
    response = page.request.get(f"{url}/api/v1/me")
    assert response.status == 401
    _fill_sign_in(page, coder)
    expect(page).to_have_url(f"{url}/work/{item}")  # back where they were
    expect(page.locator("#codes-form")).to_be_visible()


@pytest.mark.usefixtures("one_minute_idle")
def test_the_dashboard_refresh_does_not_keep_a_supervisor_signed_in(
    page: Page, live_server, backend
) -> None:
    boss = make_user("boss", "supervisor")
    url = live_server.url
    page.clock.install()
    _sign_in(page, url, boss)
    page.goto(f"{url}/supervise")
    expect(page.locator("#queue-stats")).to_be_visible()
    page.clock.fast_forward("00:30")
    page.keyboard.press("Tab")  # input restarts the idle clock...
    _idle_out(page)  # ...but the figures' refresh every 10 seconds does not
    expect(page).to_have_url(re.compile(r"/login\?expired=1&next=%2Fsupervise$"))


def test_a_lost_lease_says_so_in_the_code_panel_and_offers_the_way_on(
    page: Page, live_server, backend
) -> None:
    item = make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    dx = page.locator("#dx-lines input[name=dx_code]").first
    dx.fill("J06.9")
    dx.press("Tab")  # saved: the panel says it is ready
    expect(page.locator("#codes-ok")).to_be_visible()
    expire(item)  # the lease ran out (or a supervisor took the chart back)
    dx.fill("J02.9")
    dx.press("Tab")
    expect(page.locator("#codes-ok")).to_have_count(0)
    panel = page.locator("#codes-not-saved")
    expect(panel).to_contain_text("Not saved: this chart is no longer yours")
    expect(panel).to_contain_text("Your codes are still on screen")
    expect(panel).not_to_contain_text("Back to My work")  # the flash's buttons, not words
    message = page.locator("#flash [role=alert]")
    expect(message).to_contain_text(re.compile("lease .*expired|no longer leased"))
    expect(message).to_contain_text("Nothing more can be saved on this chart")
    expect(message).to_contain_text("copy them")
    expect(message).not_to_contain_text("not kept")
    expect(message.get_by_role("link", name="Back to My work")).to_be_visible()
    expect(message.get_by_role("button", name="Next chart")).to_be_visible()
    # The header no longer counts down a lease the coder does not hold.
    expect(page.locator("#lease")).to_have_text(re.compile(r"^\s*Lease ended"))
    expect(page.locator("[data-countdown-to]")).to_have_count(0)
    dx.fill("J03.90")
    dx.press("Tab")  # a second try says the same, once
    expect(page.locator("#lease")).to_have_text(re.compile(r"^\s*Lease ended"))
    expect(panel).to_have_count(1)


def test_a_bad_audit_search_replaces_the_old_results_with_the_reason(
    page: Page, live_server, backend
) -> None:
    auditor = make_user("cora", "compliance")
    url = live_server.url
    _sign_in(page, url, auditor)
    page.goto(f"{url}/compliance")
    page.click("#search")
    expect(page.locator("#results table#events")).to_be_visible()
    page.fill("input[name=work_item]", "abc")
    page.click("#search")
    expect(page.locator("#search-error")).to_contain_text("A work item is a number")
    expect(page.locator("#results table#events")).to_have_count(0)


def test_the_chart_and_the_code_field_fit_one_screen_and_the_notes_can_be_searched(
    page: Page, live_server, backend
) -> None:
    item = make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    # The code field is on screen without scrolling the page, and has the focus.
    code = page.locator("#dx-lines input[name=dx_code]").first
    expect(code).to_be_focused()
    assert page.evaluate("document.scrollingElement.scrollHeight") <= 768
    box = code.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 768
    # Notes are readable: the "# Chief Complaint" line is a heading, not raw markup.
    expect(page.locator("#documents .document h4").first).to_have_text("Chief Complaint")
    # Find in the chart highlights every hit; Enter walks through them.
    page.fill("#doc-search", "rhonchi")
    expect(page.locator("#documents mark.hit")).to_have_count(1)
    page.press("#doc-search", "Enter")
    expect(page.locator("#doc-hits")).to_have_text("1 of 1 (Enter: next)")
    # Privacy: when the window loses focus the chart blurs; a key brings it back.
    page.evaluate("window.dispatchEvent(new Event('blur'))")
    expect(page.locator("body")).to_have_class(re.compile(r"\bprivacy\b"))
    page.keyboard.press("Shift")
    expect(page.locator("body")).not_to_have_class(re.compile(r"\bprivacy\b"))


def test_after_submit_my_work_says_where_the_chart_went_and_the_next_one_opens(
    page: Page, live_server, backend
) -> None:
    items = {make_encounter(queue="default"), make_encounter(queue="default")}
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(r"/work/\d+$"))
    first = int(page.url.rsplit("/", 1)[1])
    (second,) = items - {first}
    expect(page.locator("#dx-lines input[name=dx_code]").first).to_be_focused()
    page.keyboard.type("J06.9")  # the first empty code field has the focus
    page.keyboard.press("Alt+p")
    page.locator("#px-lines input[name=px_code]").first.fill("99213")
    page.locator("#px-lines input[name=px_charge]").first.fill("95")
    expect(page.locator("#codes-ok")).to_be_visible(timeout=15000)
    page.keyboard.press("Control+Enter")
    expect(page.locator("#work-message")).to_contain_text(
        f"Chart #{first} submitted: it went to billing"
    )
    expect(page).to_have_url(f"{url}/work/{second}")  # auto-next
    # Turned off, the coder stays on My work after the next Submit.
    page.goto(f"{url}/work")
    page.uncheck("#auto-next")
    page.goto(f"{url}/work?submitted={second}&to=qa_review")
    expect(page.locator("#work-message")).to_contain_text("it went to QA review")
    page.wait_for_timeout(2000)
    expect(page).to_have_url(re.compile(r"/work\?submitted="))


def test_a_coder_in_no_queue_is_told_so(page: Page, live_server, backend) -> None:
    coder = make_user("lone", "coder")
    _sign_in(page, live_server.url, coder)
    page.goto(f"{live_server.url}/work")
    expect(page.locator("#no-queues")).to_contain_text("not a member of any queue")


def test_a_coders_day_by_keyboard_alone(page: Page, live_server, backend) -> None:
    """Sign in, Next, find a code by words and pick it with the keyboard, add a procedure,
    submit, and land on the next chart; no mouse."""
    items = {make_encounter(queue="default"), make_encounter(queue="default")}
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    page.goto(f"{url}/login")
    page.focus("#username")
    page.keyboard.type(coder.username)
    page.keyboard.press("Tab")
    page.keyboard.type(coder.password)
    page.keyboard.press("Tab")
    page.keyboard.type(fresh_totp(coder))
    page.keyboard.press("Enter")
    expect(page.locator("#home-title")).to_be_visible()
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(r"/work/\d+$"))
    first = int(page.url.rsplit("/", 1)[1])
    dx = page.locator("#dx-lines input[name=dx_code]").first
    expect(dx).to_be_focused()
    page.keyboard.type("type 2 diabetes without complications", delay=10)
    expect(page.locator("#code-suggestions [role=option]").first).to_contain_text("E11.9")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(dx).to_have_value("E11.9")
    page.keyboard.press("Alt+p")
    expect(page.locator("#px-lines input[name=px_code]").first).to_be_focused()
    page.keyboard.type("99213")
    expect(page.locator("#codes-ok")).to_be_visible(timeout=15000)
    page.keyboard.press("Control+Enter")
    (second,) = items - {first}
    expect(page).to_have_url(f"{url}/work/{second}")


def test_the_working_drg_moves_as_the_coder_adds_a_cc(page: Page, live_server, backend) -> None:
    from datetime import UTC, datetime

    item = make_encounter(
        queue="default",
        **{
            "class": "inpatient",
            "start": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
            "end": datetime(2026, 1, 14, 11, 0, tzinfo=UTC),
        },
    )
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    first = page.locator("#dx-lines input[name=dx_code]").first
    first.fill("I50.23")
    page.locator("#dx-lines select[name=dx_poa]").first.select_option("Y")
    expect(page.locator("#working-drg")).to_have_attribute("data-drg", "293", timeout=15000)
    page.keyboard.press("Alt+d")
    second = page.locator("#dx-lines input[name=dx_code]").nth(1)
    second.fill("N17.9")
    page.locator("#dx-lines select[name=dx_poa]").nth(1).select_option("Y")
    expect(page.locator("#working-drg")).to_have_attribute("data-drg", "292", timeout=15000)
    expect(page.locator("#working-drg")).to_contain_text("N17.9")
    # The coder keeps the working DRG in view at 1366x768 while coding, above the edit list.
    page.set_viewport_size({"width": 1366, "height": 768})
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#working-drg").bounding_box()
    assert box is not None
    assert box["y"] < 768, box
    first_message = page.locator("#code-problems .problem").first.bounding_box()
    assert first_message is not None
    assert box["y"] < first_message["y"]  # however long the list of edits grows


def test_a_source_hint_looks_for_its_icd10_codes_in_the_code_field(
    page: Page, live_server, backend
) -> None:
    item = make_encounter(queue="default")  # the source sent "Acute bronchitis (disorder)"
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    page.click("#source-hints summary")
    page.get_by_role("button", name="Find ICD-10-CM codes for Acute bronchitis (disorder)").click()
    dx = page.locator("#dx-lines input[name=dx_code]").first
    expect(dx).to_have_value("Acute bronchitis")
    expect(dx).to_be_focused()
    expect(page.locator("#code-suggestions [role=option]").first).to_contain_text("J20")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(dx).to_have_value(re.compile(r"^J20\."))


SELECT_PASSAGE = """(words) => {
  const doc = document.querySelector('#documents .document');
  const walker = document.createTreeWalker(doc, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, at = node.nodeValue.indexOf(words);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + words.length);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      return true;
    }
  }
  return false;
}"""


def test_a_passage_is_linked_to_a_code_line_and_shown_again(page: Page, live_server, backend):
    item = make_encounter(queue="default")
    coder = make_user("ana", "coder", queues=["default"])
    url = live_server.url
    _sign_in(page, url, coder)
    page.goto(f"{url}/work")
    page.keyboard.press("n")
    expect(page).to_have_url(f"{url}/work/{item}")
    dx = page.locator("#dx-lines input[name=dx_code]").first
    dx.fill("J20.9")
    dx.press("Tab")
    dx.focus()
    assert page.evaluate(SELECT_PASSAGE, "productive cough")
    page.keyboard.press("Alt+e")
    chip = page.locator("#dx-lines [data-evidence]").first
    expect(chip).to_be_visible()
    expect(page.locator("#codes-ok")).to_be_visible(timeout=15000)
    # Saved with the codes (sealed), so it is there when the chart opens again.
    page.wait_for_timeout(500)
    page.reload()
    chip = page.locator("#dx-lines [data-evidence]").first
    expect(chip).to_be_visible()
    page.evaluate("window.getSelection().removeAllRanges()")
    chip.click()
    assert page.evaluate("window.getSelection().toString()") == "productive cough"
