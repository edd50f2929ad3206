"""Server time of every page people use, on the demo data (not a test).

A fresh SQLite database in a temporary folder, prepared exactly as `chartdesk demo` does
(migrations, one account per role, the shipped Synthea charts); the app runs in process and
each role's pages are requested R times through the real middleware, session and audit. It
reports the server time per page (p50, p95, max) against the 100 ms target of issue 14, and
writes bench/results/pages-latest.md.

    .venv/bin/python -m bench.pages [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyotp

TARGET_MS = 100.0
PAGES = {
    "coder": ["/home", "/work", "{chart}", "{codes}", "/reports/mine", "/emergency-access"],
    "supervisor": ["/supervise", "/routing", "/qa", "/edits", "/reports/dnfb"],
    "biller": ["/billing"],
    "compliance": ["/compliance", "/compliance/flags"],
    "admin": ["/admin/users", "/admin/tokens"],
}


def main() -> int:
    """Prepare the demo data, time each page, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="chartdesk-pages-"))
    os.chdir(folder)
    os.environ.update(
        CHARTDESK_ENV="development",
        CHARTDESK_DATABASE_URL=f"sqlite:///{folder / 'chartdesk.db'}",
        CHARTDESK_KEYRING_FILE=str(folder / "keyring.json"),
        CHARTDESK_DEMO_FILE=str(folder / "demo-users.json"),
        CHARTDESK_AUDIT_SEAL_INTERVAL_SECONDS="0",
        CHARTDESK_LOG_LEVEL="WARNING",
    )
    from fastapi.testclient import TestClient

    from server import demo
    from server.cli import DEMO_ROLES
    from server.coding import codesets
    from server.main import create_app

    prepared = demo.prepare(DEMO_ROLES)
    codesets.icd10cm()  # built at start-up in a served process
    users = {u["username"]: u for u in json.loads((folder / "demo-users.json").read_text())}
    app = create_app()
    rows: list[tuple[str, str, list[float]]] = []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for role, paths in PAGES.items():
            client.cookies.clear()
            secret = users[role]["totp_secret"]
            signed = client.post(
                "/api/v1/session",
                json={
                    "username": role,
                    "password": users[role]["password"],
                    "totp": pyotp.TOTP(secret).now(),
                },
            )
            signed.raise_for_status()
            client.headers["X-CSRF-Token"] = signed.json()["csrf_token"]
            chart = None
            if role == "coder":
                claimed = client.post("/api/v1/work/next", json={})
                chart = claimed.json()["id"] if claimed.status_code == 200 else None
            for template in paths:
                if "{" in template and chart is None:
                    continue
                path = template.format(chart=f"/work/{chart}", codes=f"/work/{chart}/codes")
                times = []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    response = client.get(path, headers={"accept": "text/html"})
                    times.append((time.perf_counter() - start) * 1000)
                    if response.status_code != 200:
                        print(f"{role} {path}: {response.status_code}", file=sys.stderr)
                        return 1
                rows.append((role, path, times))
            del client.headers["X-CSRF-Token"]
    lines = [
        "# Server time per page on the demo data",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {prepared.charts.describe()}; "
        f"{args.rounds} requests each, in process (TestClient: the full middleware, session "
        "check and audit, no network); SQLite; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        f"| role | page | p50 ms | p95 ms | max ms | target {TARGET_MS:.0f} ms |",
        "|---|---|---|---|---|---|",
    ]
    missed = 0
    for role, path, times in rows:
        p95 = sorted(times)[int(len(times) * 0.95) - 1]
        met = p95 <= TARGET_MS
        missed += not met
        lines.append(
            f"| {role} | `{path}` | {statistics.median(times):.1f} | {p95:.1f} | "
            f"{max(times):.1f} | {'met' if met else '**missed**'} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).resolve().parent / "results" / "pages-latest.md"
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
