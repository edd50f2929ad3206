"""`make audit` says how many packages it checked and names those it could not.

Offline it used to print "No known vulnerabilities found" and exit 0 having checked nothing.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dependency_audit", ROOT / "tools/dependency_audit.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OFFLINE = {
    "dependencies": [
        {
            "name": "fastapi",
            "skip_reason": "Dependency not found on PyPI and could not be audited: fastapi (1)",
        },
        {
            "name": "jinja2",
            "skip_reason": "Dependency not found on PyPI and could not be audited: jinja2 (3)",
        },
        {"name": "chartdesk", "skip_reason": "distribution marked as editable"},
    ],
    "fixes": [],
}


def test_offline_report_says_nothing_was_checked_and_names_every_package() -> None:
    lines, status = _tool().summarize(OFFLINE)
    text = "\n".join(lines)
    assert status == 0  # offline is not a failure...
    assert "checked 0 of 2 packages" in text  # ...but it says so
    assert "could NOT check 2 packages" in text
    assert "fastapi, jinja2" in text
    assert "No known vulnerabilities found" not in text


def test_partial_report_counts_and_a_vulnerability_fails() -> None:
    report = {
        "dependencies": [
            {
                "name": "jinja2",
                "version": "2.0",
                "vulns": [{"id": "GHSA-x", "fix_versions": ["3.1.5"]}],
            },
            {"name": "fastapi", "version": "1", "vulns": []},
            OFFLINE["dependencies"][0] | {"name": "h11"},
        ]
    }
    lines, status = _tool().summarize(report)
    text = "\n".join(lines)
    assert status == 1
    assert "VULNERABLE jinja2 2.0: GHSA-x (3.1.5)" in text
    assert "checked 2 of 3 packages: 1 known vulnerabilities in 1 of them" in text
    assert "could NOT check 1 packages" in text
    assert "h11" in text


def test_make_audit_reports_its_coverage() -> None:
    """The real target, on this machine (offline or not): a count, and exit 0 unless a
    checked package has a known vulnerability."""
    done = subprocess.run(
        ["make", "-s", "audit"], cwd=ROOT, capture_output=True, text=True, timeout=400, check=False
    )
    match = re.search(r"checked (\d+) of (\d+) packages", done.stdout)
    assert match, done.stdout[-2000:] + done.stderr[-2000:]
    checked, total = int(match[1]), int(match[2])
    assert total > 50
    if checked < total:
        assert f"could NOT check {total - checked} packages" in done.stdout
    assert done.returncode == (1 if "VULNERABLE" in done.stdout else 0)
