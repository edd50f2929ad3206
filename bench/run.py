"""`make bench`: Chartdesk's figures beside their anchors, same run, same data.

Starts a throwaway PostgreSQL (fsync defaults kept), migrates, loads work items and N audit
events with set-based SQL, measures the anchors (bare psycopg SKIP LOCKED claim loop, bare
COPY read of audit rows, the search SQL run directly) and the app figures whose endpoints
exist, then writes bench/results/latest.md.  Usage: bench/run.py [--events N] [--items N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.server import Server, load_get  # noqa: E402
from tests.support.pgcluster import start_cluster  # noqa: E402

VENV = Path(sys.executable).parent


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


def load(dsn: str, items: int, events: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "INSERT INTO work_queue (name, description, qa_sample_percent, created_at) "
            "VALUES ('bench', '', 0, now())"
        )
        c.execute(
            "INSERT INTO data_key (kek_id, wrapped, created_at) VALUES ('k1', '\\x00', now())"
        )
        c.execute(
            "INSERT INTO patient (source_system, mrn_index, created_at) "
            "SELECT 'bench', md5(g::text), now() FROM generate_series(1, %s) g",
            (items,),
        )
        c.execute(
            "INSERT INTO encounter (source_system, external_id, patient_id, data_key_id, "
            "encounter_class, sealed_patient, created_at) "
            "SELECT 'bench', 'e' || g, g, 1, 'outpatient', '\\x00', now() "
            "FROM generate_series(1, %s) g",
            (items,),
        )
        c.execute(
            "INSERT INTO work_item (encounter_id, queue_id, status, priority, "
            "created_at, updated_at) "
            "SELECT g, 1, 'ready', g %% 3, now(), now() FROM generate_series(1, %s) g",
            (items,),
        )
        # Search-only events: chain hash columns (if any) are left at their defaults.
        c.execute(
            "INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles, "
            "patient_id, work_item_id, purpose) "
            "SELECT timestamptz '2025-01-01' + (g * interval '3 seconds'), 'record.view', "
            "'success', 'user' || (g %% 500), 'user', 'coder', (g::bigint * 7919) %% 200000, "
            "g %% %s, 'coding' "
            "FROM generate_series(1, %s) g",
            (items, events),
        )
        c.execute("ANALYZE")


def reset_items(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "UPDATE work_item SET status='ready', lease_owner_id=NULL, lease_expires_at=NULL "
            "WHERE status <> 'ready'"
        )
        c.execute("VACUUM ANALYZE work_item")


CLAIM = (
    "UPDATE work_item SET status='in_progress', lease_expires_at=now()+interval '15 minutes', "
    "updated_at=now() WHERE id = (SELECT id FROM work_item WHERE queue_id=1 AND status='ready' "
    "ORDER BY priority DESC, due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
)


def bare_claims(dsn: str, clients: int, seconds: float) -> dict[str, float]:
    """Each thread claims in its own transaction as fast as it can."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    claimed: list[list[int]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                row = c.execute(CLAIM).fetchone()
                lat[i].append(time.perf_counter() - t)
                if row:
                    claimed[i].append(row[0])

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    all_lat = [x for xs in lat for x in xs]
    ids = [x for xs in claimed for x in xs]
    return {
        "rate": len(ids) / wall,
        "p50": pct(all_lat, 0.5),
        "p95": pct(all_lat, 0.95),
        "p99": pct(all_lat, 0.99),
        "double": len(ids) - len(set(ids)),
    }


def copy_read(dsn: str) -> tuple[int, float]:
    with psycopg.connect(dsn) as c, c.cursor() as cur:
        t = time.perf_counter()
        n = 0
        with cur.copy("COPY (SELECT * FROM audit_event ORDER BY id) TO STDOUT") as cp:
            for _row in cp.rows():
                n += 1
        return n, time.perf_counter() - t


SEARCHES = {
    "patient + one month": (
        "SELECT * FROM audit_event WHERE patient_id = %s AND time >= %s "
        "AND time < %s::timestamptz + interval '1 month' ORDER BY time DESC LIMIT 100",
        lambda i: (1000 + i * 37, "2025-03-01"),
    ),
    "user + twelve months": (
        "SELECT * FROM audit_event WHERE actor = %s AND time >= %s "
        "AND time < %s::timestamptz + interval '12 months' ORDER BY time DESC LIMIT 100",
        lambda i: (f"user{i % 500}", "2025-01-01"),
    ),
}


def search_direct(dsn: str, sql: str, args, runs: int = 40) -> dict[str, float]:
    lat = []
    with psycopg.connect(dsn, autocommit=True) as c:
        for i in range(runs):
            a = args(i)
            t = time.perf_counter()
            c.execute(sql, (a[0], a[1], a[1])).fetchall()
            lat.append(time.perf_counter() - t)
    return {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95)}


def app_routes() -> set[str]:
    out = subprocess.run(
        [
            str(VENV / "python"),
            "-c",
            "from server.main import create_app\n"
            "print('\\n'.join(getattr(r,'path','') for r in create_app().routes))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    return set(out.stdout.split())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    o = ap.parse_args()
    cluster = start_cluster(fast=False)
    rows: list[tuple[str, str, str, str, str]] = []
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute("CREATE DATABASE bench")
        dsn, url = cluster.dsn("bench"), cluster.url("bench")
        env = dict(os.environ, CHARTDESK_DATABASE_URL=url, CHARTDESK_ENV="development")
        subprocess.run(
            [str(VENV / "alembic"), "upgrade", "head"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        t = time.perf_counter()
        load(dsn, o.items, o.events)
        print(
            f"loaded {o.items} work items, {o.events} audit events "
            f"in {time.perf_counter() - t:.0f}s"
        )

        bare = bare_claims(dsn, 64, o.seconds)
        half = bare_claims(dsn, 32, o.seconds)
        print("bare SKIP LOCKED @64:", bare, "@32:", half)
        routes = app_routes()
        claim_app = "/api/v1/work/next" in routes
        rows.append(
            (
                "claims/s, 64 clients",
                "n/a: endpoint not landed" if not claim_app else "",
                f"{bare['rate']:.0f}/s (bare psycopg SKIP LOCKED, 64 conns)",
                "—",
                "≥0.35× and ≥500/s",
            )
        )
        rows.append(
            (
                "claim latency p50/p95/p99, 64",
                "n/a" if not claim_app else "",
                f"{bare['p50']:.1f}/{bare['p95']:.1f}/{bare['p99']:.1f} ms",
                "—",
                "—",
            )
        )
        rows.append(
            (
                "claim latency p50/p99, 32 (half load)",
                "n/a" if not claim_app else "",
                f"{half['p50']:.1f}/{half['p99']:.1f} ms (bare)",
                "—",
                "p50≤5, p99≤25 ms",
            )
        )
        rows.append(
            (
                "double assignments",
                "n/a",
                f"{int(bare['double'] + half['double'])} (bare)",
                "—",
                "0",
            )
        )

        n, secs = copy_read(dsn)
        rows.append(
            (
                "audit verify events/s",
                "n/a: `audit verify` not landed",
                f"{n / secs:,.0f}/s (bare COPY read, {n:,} rows)",
                "—",
                "≥200,000/s, ≥0.5×",
            )
        )
        for name, (sql, args) in SEARCHES.items():
            r = search_direct(dsn, sql, args)
            rows.append(
                (
                    f"audit search {o.events:,} events, {name}",
                    "n/a: GET /api/v1/audit/events not landed"
                    if "/api/v1/audit/events" not in routes
                    else "",
                    f"p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms (same SQL, direct)",
                    "—",
                    "p95≤100 ms, ≤1.5×" if "patient" in name else "—",
                )
            )
        for what in (
            "GET /api/v1/work/{id} vs null cipher",
            "audited view vs unchained insert",
        ):
            rows.append((what, "n/a: endpoints not landed", "—", "—", "see DESIGN.md"))
        reset_items(dsn)
        done = threading.Event()

        def long_search() -> None:
            with psycopg.connect(dsn, autocommit=True) as c:
                while not done.is_set():
                    c.execute(
                        "SELECT actor, count(*) FROM audit_event WHERE time >= '2025-01-01' "
                        "AND time < timestamptz '2025-01-01' + interval '12 months' "
                        "GROUP BY actor"
                    ).fetchall()

        searcher = threading.Thread(target=long_search)
        searcher.start()
        try:
            busy = bare_claims(dsn, 64, o.seconds)
        finally:
            done.set()
            searcher.join()
        rows.append(
            (
                "claims/s during a long compliance search (12-month scan)",
                "n/a: endpoint not landed",
                f"{busy['rate']:.0f}/s bare during search vs {bare['rate']:.0f}/s without",
                f"{busy['rate'] / bare['rate']:.2f}×",
                "—",
            )
        )
        srv = Server(ROOT, url)
        try:
            cpu0 = srv.cpu()
            lat = load_get(srv.base, "/healthz", 64, o.seconds)
            per_req = (srv.cpu() - cpu0) / max(1, len(lat)) * 1000
            rss = ", ".join(f"{m:.0f} MB" for m in srv.rss())
            rows.append(
                (
                    "server CPU/request, peak RSS/process (GET /healthz, 64 clients)",
                    f"{per_req:.2f} ms CPU/req; {len(lat) / o.seconds:.0f} req/s; "
                    f"p50/p99 {pct(lat, 0.5):.1f}/{pct(lat, 0.99):.1f} ms; RSS {rss}",
                    "—",
                    "—",
                    "—",
                )
            )
        finally:
            srv.stop()
    finally:
        cluster.stop()

    lines = [
        "# Chartdesk benchmark (latest run)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
        f"PostgreSQL on loopback, fsync on; {o.items:,} work items; {o.events:,} audit events "
        "(generated with INSERT ... SELECT generate_series; chain hashes skipped: "
        "search-only rows).",
        "",
        "| figure | Chartdesk | anchor | ratio | target |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "bench" / "results" / "latest.md").write_text(text)


if __name__ == "__main__":
    main()
