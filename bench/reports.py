"""Dashboard figures at scale (issue 20 Speed): productivity, case-mix and DNFB on
PostgreSQL with `--items` work items (default 1,000,000), each beside the same SQL in psql.

Starts a throwaway PostgreSQL, migrates, loads synthetic rows with `generate_series`
(items over the last 365 days: a lease and a submit event each, a third of them inpatient
with a final MS-DRG and CC/MCC counts), runs ANALYZE, then times each report function
in process (`--rounds` runs, p50/p95, the ORM and Python included) beside its compiled SQL
run in psql with `\\timing`, and prints EXPLAIN (ANALYZE, BUFFERS) of the productivity
query, and the dashboard's 10-second refresh (full figures against the change check).
Then `--events` audit events (default 10,000,000) over the last 365 days, and the
compliance activity figure, before and after the sealer's roll-up of settled days.
The rows are synthetic load, not coding facts. Writes bench/results/reports-latest.md.
Usage: .venv/bin/python -m bench.reports [--items N] [--events N] [--rounds N]
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
    "final_drg, final_drg_version, final_cc_count, final_mcc_count, created_at, updated_at, "
    "discharged_at, encounter_class, payer_class) "
    "SELECT e.id, 1 + e.id % 5, CASE WHEN e.id % 10 = 0 THEN 'ready' ELSE 'billed' END, 0, "
    "1 + e.id % 50, e.end_at + interval '1 day', "
    "CASE WHEN e.encounter_class = 'inpatient' THEN (ARRAY['291','292','293','871','872'])"
    "[1 + e.id % 5] END, CASE WHEN e.encounter_class = 'inpatient' THEN '43.0' END, "
    "CASE WHEN e.encounter_class = 'inpatient' THEN e.id % 2 END, "
    "CASE WHEN e.encounter_class = 'inpatient' THEN e.id % 3 / 2 END, now(), now(), "
    "coalesce(e.end_at, e.start_at), e.encounter_class, e.payer_class FROM encounter e",
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


def psql_ms(cluster: Any, sql: str | list[str], rounds: int) -> list[float]:
    """The statement (or a call's statements, summed per round) `rounds` times in psql with
    \\timing: milliseconds each round."""
    import re

    statements = [sql] if isinstance(sql, str) else sql
    # As the app runs them: the reports turn JIT off for their transaction (SET LOCAL).
    setup = ["SET jit = off;"]
    body = [q.rstrip(";") + ";" for q in statements if not q.startswith("SET LOCAL")]
    script = [*setup, "\\timing on", "\\o /dev/null", *(body * rounds)]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("\n".join(script) + "\n")
    psql = str(cluster.bindir / "psql")
    cmd = [psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres"]
    out = subprocess.run(
        [*cmd, "-d", "bench", "-f", f.name], capture_output=True, text=True, check=True
    )
    times = [float(m) for m in re.findall(r"Time: ([0-9.]+) ms", out.stdout)]
    n = len(body)
    return [sum(times[i : i + n]) for i in range(0, len(times), n)]


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


FIGURES = {
    "productivity, last 7 days": lambda s: _service().productivity(s),
    # Not on day boundaries: whole days from the summary, the partial first and last from
    # the raw submits.
    "productivity, last 30 days": lambda s: _service().productivity(
        s, since=datetime.now(UTC).replace(microsecond=0) - _days(30)
    ),
    # Partial first and last days with submits in them (the bench's submits are all at the
    # load's time of day): ~2,700 raw submits each side of the summary's whole days.
    "productivity, 30 days ± 1 hour": lambda s: _service().productivity(
        s,
        since=datetime.now(UTC).replace(microsecond=0) - _days(30) - _hours(1),
        until=datetime.now(UTC).replace(microsecond=0) + _hours(1),
    ),
    "throughput, last 30 days": lambda s: _work().throughput(s),
    "case-mix by coder, 12 months": lambda s: _casemix().case_mix(s, by="coder"),
    "case-mix by month, 12 months": lambda s: _casemix().case_mix(s, by="month"),
    "DNFB by queue": lambda s: _service().dnfb(s, by="queue"),
    "DNFB by class": lambda s: _service().dnfb(s, by="class"),
    "DNFB by payer class": lambda s: _service().dnfb(s, by="payer_class"),
}
ACTIVITY = {"compliance activity, last 30 days": lambda s: _activity().activity(s)}


def _service() -> Any:
    from server.reports import service

    return service


def _work() -> Any:
    from server.reports import work

    return work


def _casemix() -> Any:
    from server.reports import casemix

    return casemix


def _activity() -> Any:
    from server.audit import activity

    return activity


def measure(
    cluster: Any, dsn: str, rounds: int, figures: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each figure's in-process times, and the psql times of every statement it ran (summed
    per round)."""
    from sqlalchemy import event
    from sqlmodel import Session

    from server.db import get_engine

    engine = get_engine()
    out: dict[str, Any] = {}
    for name, call in (figures or FIGURES).items():
        times = []
        rec = Recorder(engine)
        for n in range(rounds):
            with Session(engine) as s:
                t = time.perf_counter()
                call(s)
                times.append((time.perf_counter() - t) * 1000)
            if n == 0:
                event.remove(engine, "before_cursor_execute", rec._seen)  # noqa: SLF001
        statements = [rec.literal(dsn, i) for i in range(len(rec.statements))]
        main = max(statements, key=len)
        out[name] = {
            "app": times,
            "psql": psql_ms(cluster, statements, rounds),
            "sql": main,
            "statements": len([q for q in statements if not q.startswith("SET LOCAL")]),
        }
    return out


def _hours(n: int) -> Any:
    from datetime import timedelta

    return timedelta(hours=n)


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def explain(dsn: str, sql: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a statement."""
    with psycopg.connect(dsn) as c:
        c.execute("SET jit = off")  # as the app runs productivity
        rows = c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()  # type: ignore[arg-type]
    return "\n".join(r[0] for r in rows)


def load_audit(dsn: str, events: int) -> float:
    """`events` audit events over the last 365 days up to now, in bench.load's mix (4 in 10
    record views, 1 in 97 refused), 1M per transaction, the secondary indexes built after.
    Returns the seconds it took."""
    from bench.load import insert_events

    started = time.perf_counter()
    insert_events(dsn, first=1, count=events, total=events, items=1_000_000, recent=True)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("VACUUM ANALYZE audit_event")
    return time.perf_counter() - started


def main() -> None:
    """Load, measure, write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000, help="audit events")
    ap.add_argument("--rounds", type=int, default=20)
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
        # The per-day coding summary, as migration 0027 builds it from the stored submits.
        from server.db import get_engine
        from server.reports import summary

        with get_engine().begin() as conn:
            summary_rows = summary.rebuild_coding_days(conn)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("VACUUM ANALYZE")
        loaded = time.perf_counter() - started
        runs = {"figures": measure(cluster, dsn, args.rounds)}
        plans = {
            "productivity, 30 days ± 1 hour (a partial day's raw submits)": explain(
                dsn, runs["figures"]["productivity, 30 days ± 1 hour"]["sql"]
            ),
            "DNFB by queue": explain(dsn, runs["figures"]["DNFB by queue"]["sql"]),
        }
        refresh = measure_refresh(dsn, args.rounds)
        audit_s = load_audit(dsn, args.events)
        # Nothing rolled up yet: every day of the window counted from the partial index.
        runs["activity, no day rolled up"] = measure(cluster, dsn, args.rounds, ACTIVITY)
        plans["compliance activity, no day rolled up"] = explain(
            dsn, runs["activity, no day rolled up"]["compliance activity, last 30 days"]["sql"]
        )
        # As the sealer does every hour: settled days into audit_day.
        t = time.perf_counter()
        from sqlmodel import Session

        from server.audit import activity

        with Session(get_engine()) as s:
            closed = activity.roll_up(s)
            s.commit()
        rollup_s = time.perf_counter() - t
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("ANALYZE audit_day")
        runs["activity, settled days rolled up"] = measure(cluster, dsn, args.rounds, ACTIVITY)
        plans["compliance activity, rolled up (today and yesterday from the log)"] = explain(
            dsn,
            runs["activity, settled days rolled up"]["compliance activity, last 30 days"]["sql"],
        )
        notes = {
            "summary_rows": summary_rows,
            "audit_s": audit_s,
            "rollup_s": rollup_s,
            "closed": closed,
        }
        write(args, loaded, runs, plans, refresh, notes)
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


TITLES = {
    "figures": "The dashboard figures (migration 0027: per-day summary, discharge beside status, "
    "covering index)",
    "activity, no day rolled up": "Compliance activity, no day rolled up (every day counted "
    "from the partial index ix_audit_event_activity)",
    "activity, settled days rolled up": "Compliance activity, settled days rolled up by the "
    "sealer (today and yesterday counted from the log)",
}


def write(
    args: Any,
    loaded: float,
    runs: dict[str, Any],
    plans: dict[str, str],
    refresh: dict[str, Any] | None = None,
    notes: dict[str, Any] | None = None,
) -> None:
    """bench/results/reports-latest.md: a table per run, the plans, the SQL."""
    notes = notes or {}
    lines = [
        "# Dashboard figures at scale (bench/reports.py)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {args.items:,} work items, "
        f"{2 * args.items:,} work item events ({notes.get('summary_rows', 0):,} coding_day "
        f"rows) · loaded in {loaded:.0f} s · {args.events:,} audit events over the last 365 "
        f"days loaded in {notes.get('audit_s', 0):.0f} s, {notes.get('closed', 0)} settled "
        f"days rolled up in {notes.get('rollup_s', 0):.1f} s · {args.rounds} rounds · 2 shared "
        "cores, PostgreSQL 15 on loopback (fsync off: a read-only benchmark). Target: each "
        "figure p95 under 200 ms. psql runs every statement the call ran (summed per round). "
        "Load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ".",
        "",
    ]
    for label, run in runs.items():
        lines += [
            f"## {TITLES.get(label, label)}",
            "",
            "| figure | statements | app p50 | app p95 | same SQL in psql p50 | psql p95 "
            "| target |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, m in run.items():
            p95 = pct(m["app"], 95)
            lines.append(
                f"| {name} | {m['statements']} | {pct(m['app'], 50):.1f} ms | {p95:.1f} ms | "
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
        lines += [f"## EXPLAIN ANALYZE, {label}", "", "```", plan, "```", ""]
    lines += ["## The SQL (the longest statement of each figure)", ""]
    for run in runs.values():
        for name, m in run.items():
            lines += [f"**{name}**", "", "```sql", m["sql"], "```", ""]
    out = ROOT / "bench" / "results" / "reports-latest.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines[:60]))  # noqa: T201


if __name__ == "__main__":
    main()
