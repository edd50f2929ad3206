"""Dashboard figures at scale (issue 20 Speed): productivity, case-mix and DNFB on
PostgreSQL with `--items` work items (default 1,000,000), each beside the same SQL in psql.

Starts a throwaway PostgreSQL, migrates, loads synthetic rows with `generate_series`
(items over the last 365 days: a lease and a submit event each, a third of them inpatient
with a final MS-DRG and CC/MCC counts), runs ANALYZE, then times each report function
in process (`--rounds` runs, p50/p95, the ORM and Python included) beside its compiled SQL
run in psql with `\\timing`, and prints EXPLAIN (ANALYZE, BUFFERS) of the productivity
query, and the dashboard's 10-second refresh (full figures against the change check).
With `--before`, the figures are taken again with the submits' lease start cleared, so
productivity looks each one up as before migration 0023.
The rows are synthetic load, not coding facts. Writes bench/results/reports-latest.md.
Usage: .venv/bin/python -m bench.reports [--items N] [--rounds N] [--before]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.pgcluster import start_cluster  # noqa: E402

VENV = Path(sys.executable).parent
INDEXES = {
    "ix_work_item_event_action_at": "CREATE INDEX ix_work_item_event_action_at "
    "ON work_item_event (action, at)",
    "ix_work_item_event_item_id": "CREATE INDEX ix_work_item_event_item_id "
    "ON work_item_event (work_item_id, id)",
    "ix_work_item_coded_at": "CREATE INDEX ix_work_item_coded_at ON work_item (coded_at) "
    "WHERE final_drg IS NOT NULL",
}
LOAD = [
    "INSERT INTO app_user (username, display_name, is_active, in_training, failed_logins, "
    "created_at) SELECT 'coder' || g, 'Coder ' || g, true, false, 0, now() "
    "FROM generate_series(1, 50) g",
    "INSERT INTO work_queue (name, description, qa_sample_percent, created_at) "
    "SELECT 'queue' || g, '', 0, now() FROM generate_series(1, 5) g",
    "INSERT INTO data_key (kek_id, created_at) VALUES ('bench', now())",
    "INSERT INTO patient (source_system, mrn_index, created_at) "
    "SELECT 'bench', md5(g::text), now() FROM generate_series(1, 100000) g",
    "INSERT INTO encounter (source_system, external_id, patient_id, data_key_id, "
    "encounter_class, payer_class, start_at, end_at, sealed_patient, created_at) "
    "SELECT 'bench', 'E' || g, 1 + g % 100000, 1, "
    "(ARRAY['inpatient','outpatient','emergency'])[1 + g % 3], "
    "(ARRAY['medicare','commercial','medicaid'])[1 + g % 3], "
    "now() - (g % 365) * interval '1 day' - interval '3 days', "
    "now() - (g % 365) * interval '1 day' - interval '1 day', '\\x00', now() "
    "FROM generate_series(1, {items}) g",
    "INSERT INTO work_item (encounter_id, queue_id, status, priority, coded_by_id, coded_at, "
    "final_drg, final_drg_version, final_cc_count, final_mcc_count, created_at, updated_at) "
    "SELECT e.id, 1 + e.id % 5, CASE WHEN e.id % 10 = 0 THEN 'ready' ELSE 'billed' END, 0, "
    "1 + e.id % 50, e.end_at + interval '1 day', "
    "CASE WHEN e.encounter_class = 'inpatient' THEN (ARRAY['291','292','293','871','872'])"
    "[1 + e.id % 5] END, CASE WHEN e.encounter_class = 'inpatient' THEN '43.0' END, "
    "CASE WHEN e.encounter_class = 'inpatient' THEN e.id % 2 END, "
    "CASE WHEN e.encounter_class = 'inpatient' THEN e.id % 3 / 2 END, now(), now() "
    "FROM encounter e",
    "INSERT INTO work_item_event (work_item_id, at, actor_id, action, from_status, to_status, "
    "owner_id) SELECT w.id, w.coded_at - interval '25 minutes', w.coded_by_id, 'claim', "
    "'ready', 'in_progress', w.coded_by_id FROM work_item w ORDER BY w.coded_at",
    "INSERT INTO work_item_event (work_item_id, at, actor_id, action, from_status, to_status, "
    "lease_started_at) SELECT w.id, w.coded_at, w.coded_by_id, 'submit', 'in_progress', "
    "'ready_for_billing', w.coded_at - interval '25 minutes' "
    "FROM work_item w ORDER BY w.coded_at",
    # Queue membership, for the dashboard's refresh.
    "INSERT INTO queue_member (queue_id, user_id) "
    "SELECT 1 + g % 5, g FROM generate_series(1, 50) g",
]


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def psql_ms(cluster: Any, sql: str, rounds: int) -> list[float]:
    """The statement `rounds` times in psql with \\timing: milliseconds each."""
    import re

    # As the app runs it: productivity turns JIT off for its transaction (SET LOCAL).
    setup = ["SET jit = off;"] if "lease_start" in sql else []
    script = [*setup, "\\timing on", "\\o /dev/null", *([sql.rstrip(";") + ";"] * rounds)]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("\n".join(script) + "\n")
    psql = str(cluster.bindir / "psql")
    cmd = [psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
    out = subprocess.run(
        [*cmd, "-d", "bench", "-f", f.name], capture_output=True, text=True, check=True
    )
    return [float(m) for m in re.findall(r"Time: ([0-9.]+) ms", out.stdout)]


class Recorder:
    """Captures the SQL an in-process call runs (literal parameters), for the psql anchor."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        self.statements.append((statement, params))

    def literal(self, dsn: str, index: int = -1) -> str:
        """The `index`-th statement seen, with its parameters inlined by psycopg."""
        sql, params = self.statements[index]
        with psycopg.connect(dsn) as c:
            return psycopg.ClientCursor(c).mogrify(sql, params)


def measure(cluster: Any, dsn: str, rounds: int) -> dict[str, Any]:
    """Each figure's in-process times and the psql times of its main statement."""
    from sqlmodel import Session

    from server.db import get_engine
    from server.reports import casemix, service

    engine = get_engine()
    figures = {
        "productivity, last 7 days": lambda s: service.productivity(s),
        "productivity, last 30 days": lambda s: service.productivity(
            s, since=datetime.now(UTC).replace(microsecond=0) - _days(30)
        ),
        "case-mix by coder, 12 months": lambda s: casemix.case_mix(s, by="coder"),
        "case-mix by month, 12 months": lambda s: casemix.case_mix(s, by="month"),
        "DNFB by queue": lambda s: service.dnfb(s, by="queue"),
    }
    out: dict[str, Any] = {}
    for name, call in figures.items():
        rec = Recorder(engine)
        times = []
        for _ in range(rounds):
            with Session(engine) as s:
                t = time.perf_counter()
                call(s)
                times.append((time.perf_counter() - t) * 1000)
        # The report's own statement is the longest one it ran (the standards and QA look-ups
        # beside productivity are a few rows each).
        main = max(range(len(rec.statements)), key=lambda i: len(rec.statements[i][0]))
        sql = rec.literal(dsn, main)
        from sqlalchemy import event

        event.remove(engine, "before_cursor_execute", rec._seen)  # noqa: SLF001
        out[name] = {"app": times, "psql": psql_ms(cluster, sql, rounds), "sql": sql}
    return out


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def explain(dsn: str, sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement."""
    with psycopg.connect(dsn) as c:
        c.execute("SET jit = off")  # as the app runs productivity
        rows = c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()  # type: ignore[arg-type]
    return "\n".join(r[0] for r in rows)


def main() -> None:
    """Load, measure, write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--before", action="store_true", help="also measure without 0019's indexes")
    args = ap.parse_args()
    cluster = start_cluster(fast=True)
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        dsn, url = cluster.dsn("bench"), cluster.url("bench")
        os.environ.update(CHARTDESK_DATABASE_URL=url, CHARTDESK_ENV="development")
        subprocess.run(
            [str(VENV / "alembic"), "upgrade", "head"], cwd=ROOT, check=True, capture_output=True
        )
        started = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as c:
            for sql in LOAD:
                c.execute(sql.replace("{items}", str(args.items)))  # type: ignore[arg-type]
            c.execute("VACUUM ANALYZE")
        loaded = time.perf_counter() - started
        runs = {"after": measure(cluster, dsn, args.rounds)}
        plans = {"after": explain(dsn, runs["after"]["productivity, last 7 days"]["sql"])}
        refresh = measure_refresh(dsn, args.rounds)
        if args.before:
            # As before migration 0023: no lease start on the submits, so productivity looks
            # each one up (the report's fallback is the old query).
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute(
                    "UPDATE work_item_event SET lease_started_at = NULL WHERE action = 'submit'"
                )
                c.execute("VACUUM ANALYZE work_item_event")
            runs["before"] = measure(cluster, dsn, args.rounds)
            plans["before"] = explain(dsn, runs["before"]["productivity, last 7 days"]["sql"])
        write(args, loaded, runs, plans, refresh)
    finally:
        cluster.stop()


def measure_refresh(dsn: str, rounds: int) -> dict[str, Any]:
    """The dashboard's 10-second poll (/supervise/stats) in process: the full figures (what
    every poll cost before) against the change check that answers 204 while nothing
    changed. Wall and CPU milliseconds of this process, and the check's SQL in psql."""
    from sqlmodel import Session

    from server.db import get_engine
    from server.queue import service as queue

    engine = get_engine()
    out: dict[str, Any] = {}
    calls = {
        "refresh, full figures (every poll before)": lambda s: (
            queue.sweep_expired(s),
            queue.stats_version(s),
            queue.queue_stats(s),
        ),
        "refresh, nothing changed (change check, 204)": lambda s: (
            queue.sweep_expired(s),
            queue.stats_version(s),
        ),
    }
    for name, call in calls.items():
        wall, cpu = [], []
        for _ in range(rounds):
            with Session(engine) as s:
                s.connection()  # a pooled connection, as in a request
                t, c = time.perf_counter(), time.process_time()
                call(s)
                s.commit()
                wall.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
        out[name] = {"wall": wall, "cpu": cpu}
    return out


def write(
    args: Any,
    loaded: float,
    runs: dict[str, Any],
    plans: dict[str, str],
    refresh: dict[str, Any] | None = None,
) -> None:
    """bench/results/reports-latest.md: a table per run, the plans, the SQL."""
    lines = [
        "# Dashboard figures at scale (bench/reports.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {args.items:,} work items, "
        f"{2 * args.items:,} work item events · loaded in {loaded:.0f} s · "
        f"{args.rounds} rounds · 2 shared cores, PostgreSQL 15 on loopback (fsync off: a "
        "read-only benchmark). Target: each figure p95 under 200 ms. Load average at the "
        "end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ".",
        "",
    ]
    for label, run in runs.items():
        title = (
            "with migration 0023 (the lease start kept on each submit)"
            if label == "after"
            else "lease start looked up per submit (before 0023; case-mix and DNFB unchanged)"
        )
        lines += [
            f"## {title}",
            "",
            "| figure | app p50 | app p95 | same SQL in psql p50 | psql p95 | target |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in run.items():
            p95 = pct(m["app"], 95)
            lines.append(
                f"| {name} | {pct(m['app'], 50):.1f} ms | {p95:.1f} ms | "
                f"{pct(m['psql'], 50):.1f} ms | {pct(m['psql'], 95):.1f} ms | "
                f"{'met' if p95 < 200 else 'NOT met'} |"
            )
        lines.append("")
    if refresh:
        lines += [
            "## The dashboard's 10-second refresh (/supervise/stats, in process)",
            "",
            "Target: under 5 ms of server CPU when nothing changed (app CPU p95, and the wall "
            "p50 of app and database together, under 5 ms).",
            "",
            "| poll | wall p50 | wall p95 | app CPU p50 | app CPU p95 | target |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in refresh.items():
            cpu95 = pct(m["cpu"], 95)
            lines.append(
                f"| {name} | {pct(m['wall'], 50):.1f} ms | {pct(m['wall'], 95):.1f} ms | "
                f"{pct(m['cpu'], 50):.2f} ms | {cpu95:.2f} ms | "
                f"{'met' if 'nothing' in name and cpu95 < 5 and pct(m['wall'], 50) < 5 else '-'} |"
            )
        lines.append("")
    for label, plan in plans.items():
        lines += [
            f"## EXPLAIN ANALYZE, productivity last 7 days ({label})",
            "",
            "```",
            plan,
            "```",
            "",
        ]
    lines += ["## The SQL", ""]
    for name, m in runs["after"].items():
        lines += [f"**{name}**", "", "```sql", m["sql"], "```", ""]
    out = ROOT / "bench" / "results" / "reports-latest.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines[:40]))  # noqa: T201


if __name__ == "__main__":
    main()
