"""Claims only (issue 23): Chartdesk's Next beside its two anchors, same run, same data.

1. the bare loop: psycopg `UPDATE ... SKIP LOCKED`, one thread and connection per client;
2. the minimal app (bench/minimal_app.py): FastAPI + uvicorn (httptools), one endpoint that
   checks the session row and claims, writes the item event and the audit row in one SQL
   statement;
3. Chartdesk (`chartdesk serve`), the real `POST /api/v1/work/next`.
Both servers run the same number of worker processes (`--workers`, default 2) and take turns
(the waiting one frozen with SIGSTOP). Prints a markdown table; `--profile` py-spies the
Chartdesk phase and prints where its CPU went, by package.
Usage: bench/claims.py [--events N] [--items N] [--seconds S] [--workers 1,2,4] [--profile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import load as loader  # noqa: E402
from bench.run import (  # noqa: E402
    CLIENTS,
    bare_claims,
    claim_run,
    double_claims,
    lat3,
    prepare_database,
    sign_in_all,
)
from bench.server import Profile, Server, samples  # noqa: E402
from tests.support.pgcluster import start_cluster  # noqa: E402

PACKAGES = (
    "server/",
    "sqlalchemy/",
    "sqlmodel/",
    "fastapi/",
    "starlette/",
    "pydantic",
    "anyio/",
    "psycopg/",
    "uvicorn/",
    "asyncio/",
    "threading.py",
    "to_thread.py",
)


def by_package(files: list[Path]) -> list[tuple[str, float]]:
    """Share of the GIL-holding samples whose stack passes through each package (inclusive)."""
    shares: dict[str, int] = {}
    total = 0
    for stack, n in samples(files):
        total += n
        for pkg in PACKAGES:
            if pkg in stack:
                shares[pkg] = shares.get(pkg, 0) + n
    return sorted(((k, v / total) for k, v in shares.items()), key=lambda kv: -kv[1])


def top_frames(files: list[Path], top: int = 20) -> list[tuple[str, float]]:
    """The hottest frames of Chartdesk and SQLAlchemy (inclusive share of all samples)."""
    inclusive: dict[str, int] = {}
    total = 0
    for stack, n in samples(files):
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] = inclusive.get(frame, 0) + n
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])
    keep = [(k, v / total) for k, v in ranked if "(server/" in k or "sqlalchemy/" in k]
    return keep[:top]


def _self_shares(files: list[Path], key: Callable[[str], str], top: int) -> list[tuple[str, float]]:
    """Self time (where the samples end) grouped by `key` of the leaf frame."""
    own: dict[str, int] = {}
    total = 0
    for stack, n in samples(files):
        total += n
        where = key(stack.rsplit(";", 1)[-1])
        own[where] = own.get(where, 0) + n
    ranked = sorted(own.items(), key=lambda kv: -kv[1])
    return [(k, v / total) for k, v in ranked[:top]] if total else []


def self_frames(files: list[Path], top: int = 15) -> list[tuple[str, float]]:
    """Where the samples end (self time), any package: what the per-request cost is made of."""
    return _self_shares(files, lambda leaf: leaf, top)


def self_by_module(files: list[Path], top: int = 15) -> list[tuple[str, float]]:
    """Self time by source file (the leaf frame's file), any package."""
    return _self_shares(files, lambda leaf: leaf.rpartition("(")[2].split(":")[0], top)


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", default="2", help="app processes, e.g. 1,2,4")
    ap.add_argument("--profile", action="store_true")
    o = ap.parse_args()
    out: list[str] = []
    say = out.append
    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cluster = start_cluster(fast=False)
    keydir = tempfile.mkdtemp(prefix="chartdesk-bench-keys-")
    try:
        dsn, url, env = prepare_database(cluster, keydir)
        loader.insert_events(dsn, first=1, count=o.events, total=o.events, items=o.items)
        loader.chain_events(dsn)
        who = loader.make_users(coders=CLIENTS, readers=0)
        loader.make_records(who, real=1, null=0)  # the pool's encounters copy this one
        loader.fill_claim_pool(dsn, who, items=o.items)
        loader.analyze(dsn)
        owners = [
            int(loader.scalar(dsn, "SELECT id FROM app_user WHERE username = %s", (u,)))
            for u in who.coders
        ]
        say(
            f"{started}, code at `{_head()}`; {o.events:,} audit events, {o.items:,} items, "
            f"{o.seconds:.0f} s per phase, {CLIENTS} clients (closed loops); load average "
            f"(1/5 min) at the start {load0[0]:.1f}/{load0[1]:.1f} on {os.cpu_count()} cores."
        )
        say("")
        say(
            "| app processes | Chartdesk claims/s | minimal app | bare loop | vs minimal | "
            "vs bare | Chartdesk p50/p95/p99 | minimal p50/p95/p99 | CPU ms/claim "
            "(Chartdesk / minimal) | doubles | load 1 min |"
        )
        say("|---|---|---|---|---|---|---|---|---|---|---|")
        bare = bare_claims(dsn, owners, who.bench_queue_id, o.seconds)
        loader.reset_claim_pool(dsn, who.bench_queue_id)
        for n in [int(x) for x in o.workers.split(",")]:
            mini = Server(ROOT, env, workers=n, app="bench.minimal_app:app")
            mini.pause()
            app = Server(ROOT, env, workers=n)
            try:
                ids = sign_in_all(app.base, who.coders, who.secrets)
                coders = [ids[u] for u in who.coders]
                since = time.time()
                prof = Profile(app, Path(keydir) / f"claims{n}", o.seconds) if o.profile else None
                got, _, cpu = claim_run(app, dsn, coders, o.seconds)
                files = prof.files if prof else []
                if prof:
                    prof.summary()
                doubles = double_claims(dsn, since)
                seen = [x for x in got.seen if x]
                doubles += len(seen) - len(set(seen))
                loader.reset_claim_pool(dsn, who.bench_queue_id)
                app.pause()
                mini.resume()
                since = time.time()
                mgot, _, mcpu = claim_run(mini, dsn, coders, o.seconds)
                doubles += double_claims(dsn, since)
                loader.reset_claim_pool(dsn, who.bench_queue_id)
                errs = {**got.errors, **{f"mini {k}": v for k, v in mgot.errors.items()}}
                vs_bare = got.rate / max(1, bare["rate"])
                say(
                    f"| {n} | {got.rate:.0f}/s | {mgot.rate:.0f}/s | {bare['rate']:.0f}/s | "
                    f"{got.rate / max(1, mgot.rate):.2f}× | {vs_bare:.2f}× | "
                    f"{lat3(got.latencies)} | {lat3(mgot.latencies)} | {cpu * 1000:.2f} / "
                    f"{mcpu * 1000:.2f} | {doubles} | {os.getloadavg()[0]:.1f} |"
                    + (f" errors {errs}" if errs else "")
                )
                print(out[-1], flush=True)
                if files:
                    say("")
                    say(f"Profile of Chartdesk's phase ({n} processes), by package:")
                    for pkg, share in by_package(files):
                        say(f"- {pkg} {share:.0%}")
                    say("Hottest frames:")
                    for frame, share in top_frames(files):
                        say(f"- {share:.0%} {frame}")
                    say("Self time (where the samples end):")
                    for frame, share in self_frames(files):
                        say(f"- {share:.1%} {frame}")
                    say("Self time by file:")
                    for where, share in self_by_module(files):
                        say(f"- {share:.1%} {where}")
                    say("")
            finally:
                app.stop()
                mini.stop()
        say("")
        say(f"Bare loop latency p50/p95/p99: {lat3(bare['lat'])}; doubles {bare['double']}.")
        load1 = os.getloadavg()
        say(f"Load average (1/5 min) at the end: {load1[0]:.1f}/{load1[1]:.1f}.")
    finally:
        cluster.stop()
        print("\n".join(out))


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


if __name__ == "__main__":
    main()
