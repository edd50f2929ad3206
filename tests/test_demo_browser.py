"""The front door, as README says: `chartdesk demo` in a fresh folder, then sign in with the
password it printed and the code the sign-in page shows, and open a shipped sample chart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.pgcluster import free_port

pytestmark = pytest.mark.browser

CHARTDESK = Path(sys.executable).with_name("chartdesk")


def test_a_fresh_demo_signs_in_with_the_code_on_the_page(page: Page, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTDESK_")}
    proc = subprocess.Popen(  # noqa: S603 - our own console script
        [str(CHARTDESK), "demo", "--port", str(port)],
        cwd=tmp_path,  # a folder with nothing in it, like a fresh clone's var/
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Chartdesk demo on" in line:
                break
        out = "".join(lines)
        loaded = re.search(r"Loaded (\d+) sample encounters: .*inpatient.*; (\d+) with notes", out)
        assert loaded, out
        assert int(loaded.group(1)) >= 30
        assert int(loaded.group(2)) >= 30
        password = re.search(r"^\s+coder\s+password (\S+)", out, re.M)
        assert password, out
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo server did not start"
            time.sleep(0.2)
        page.goto(f"{url}/")
        code = page.locator(".demo-codes tr", has_text="coder").locator("code")
        expect(code).to_have_text(re.compile(r"^\d{6}$"))
        page.fill("#username", "coder")
        page.fill("#password", password.group(1))
        page.fill("#totp", code.inner_text())
        page.click("#sign-in")
        expect(page.locator("#home-title")).to_be_visible()
        page.goto(f"{url}/work")
        page.keyboard.press("n")
        expect(page).to_have_url(re.compile(r"/work/\d+$"))
        # A real Synthea history-and-physical note, not a one-line stand-in.
        expect(page.locator("#documents")).to_contain_text("History of Present Illness")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
