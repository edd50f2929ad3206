"""`make audit`: known vulnerabilities in the installed packages, saying what was checked.

pip-audit asks PyPI's advisory data about each installed package. Offline (this kind of
machine reaches package registries only), it skipped every package and still printed "No
known vulnerabilities found" with exit 0. Here the answer always says how many packages were
checked and names the ones that could not be. It stays non-failing when the advisory
service cannot be reached (nothing checked is not a finding), and fails (exit 1) on a known
vulnerability in a package that was checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from importlib import metadata
from typing import Any

TIMEOUT = 300
OFFLINE = re.compile(
    r"ConnectionError|ProxyError|Max retries|NewConnectionError|ConnectTimeout|ReadTimeout|"
    r"Name or service not known|Temporary failure in name resolution|Network is unreachable",
    re.IGNORECASE,
)
COMMAND = [
    sys.executable,
    "-m",
    "pip_audit",
    "--local",
    "--skip-editable",
    "--progress-spinner",
    "off",
    "--format",
    "json",
]


def installed() -> list[str]:
    """Names of the installed distributions other than Chartdesk itself."""
    names = {str(d.metadata["Name"]).lower() for d in metadata.distributions()}
    return sorted(names - {"chartdesk"})


def summarize(report: dict[str, Any]) -> tuple[list[str], int]:
    """The lines to print for a pip-audit JSON report, and the exit status."""
    deps = [
        d
        for d in report.get("dependencies", [])
        if "editable" not in str(d.get("skip_reason", ""))  # Chartdesk itself
    ]
    checked = [d for d in deps if "vulns" in d]
    skipped = [d for d in deps if "vulns" not in d]
    vulnerable = [d for d in checked if d["vulns"]]
    lines = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            lines.append(
                f"VULNERABLE {dep['name']} {dep.get('version', '')}: {vuln['id']} ({fixes})"
            )
    found = sum(len(d["vulns"]) for d in vulnerable)
    if not checked:
        verdict = "the advisory service answered for none (offline?): nothing was checked"
    elif found:
        verdict = f"{found} known vulnerabilities in {len(vulnerable)} of them"
    else:
        verdict = "no known vulnerabilities in them"
    lines.append(f"pip-audit: checked {len(checked)} of {len(deps)} packages: {verdict}")
    if skipped:
        by_reason: dict[str, list[str]] = defaultdict(list)
        for dep in skipped:
            reason = str(dep.get("skip_reason", "skipped")).split(":")[0]
            by_reason[reason].append(str(dep["name"]))
        lines.append(f"pip-audit: could NOT check {len(skipped)} packages:")
        lines += [f"  {reason}: {', '.join(names)}" for reason, names in by_reason.items()]
    if not checked and not found:
        lines.append("pip-audit: not a failure offline; run it where PyPI's JSON API answers")
    return lines, 1 if found else 0


def unreachable(problem: str) -> tuple[list[str], int]:
    """Lines and status when pip-audit could not finish at all (no report)."""
    names = installed()
    return [
        f"pip-audit: advisory service not reachable ({problem}): "
        f"checked 0 of {len(names)} packages (not a failure)",
        f"pip-audit: could NOT check {len(names)} packages: {', '.join(names)}",
    ], 0


def main() -> int:
    """Run pip-audit, print what it checked and found; the exit status of `make audit`."""
    try:
        proc = subprocess.run(  # noqa: S603 - fixed command
            COMMAND, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        lines, status = unreachable(f"no answer in {TIMEOUT} s")
    else:
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            report = None
        if isinstance(report, dict):
            lines, status = summarize(report)
        elif OFFLINE.search(proc.stderr):
            lines, status = unreachable("network error")
        else:
            lines, status = [proc.stderr.strip()[-4000:], "pip-audit failed"], proc.returncode or 1
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
