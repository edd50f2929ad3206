"""One record view, in-process: SQL statements, CPU per view and a py-spy profile of it.

The same measurement as `bench/run.py` `per_request` for `GET /api/v1/work/{id}`, without
the long load: a throwaway PostgreSQL (fsync on), the head migration, one reader holding one
real encrypted encounter (tests.support.factories.make_encounter through the bench loader),
and the app in this process (TestClient), so every statement is counted and
`time.process_time` covers the app's threads too. Usage:

    .venv/bin/python bench/view_profile.py [--views 300] [--top 30] [--seconds 20] [--codes]

The profile is py-spy over this process (all threads, GIL-holding samples only: the
TestClient's portal thread and the threadpool where the sync route runs). `--codes` saves
a few codes on the record first (the bench's records have none).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import load as loader  # noqa: E402
from bench.run import client_headers, prepare_database  # noqa: E402
from bench.server import samples  # noqa: E402
from tests.support.pgcluster import start_cluster  # noqa: E402


def main() -> None:
    """Load one record, then time and profile views of it."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--views", type=int, default=300, help="timed views")
    ap.add_argument("--top", type=int, default=30, help="profile lines shown")
    ap.add_argument("--seconds", type=int, default=20, help="py-spy sampling time")
    ap.add_argument("--codes", action="store_true", help="save codes on the record first")
    o = ap.parse_args()
    cluster = start_cluster(fast=False)
    try:
        prepare_database(cluster, tempfile.mkdtemp(prefix="chartdesk-view-keys-"))
        who = loader.make_users(coders=1, readers=1)
        loader.make_records(who, real=3, null=0)
        print(measure(who, o), flush=True)
    finally:
        cluster.stop()


def measure(who: Any, o: Any) -> str:
    """The figures and the profile, as text."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from server.db import AsyncPool, get_engine
    from server.main import create_app

    logging.getLogger("httpx").setLevel(logging.WARNING)  # the test client's own log lines

    statements: list[str] = []
    event.listen(
        get_engine(),
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: statements.append(" ".join(sql.split())[:110]),
    )
    # The one-statement routes (Next, the coder's view, the audit search) use the event
    # loop's own pool, not the engine: count theirs too.
    fetch = AsyncPool._fetch

    async def counted(self: AsyncPool, sql: str, params: Any, **kw: Any) -> Any:
        statements.append(" ".join(sql.split())[:110])
        return await fetch(self, sql, params, **kw)

    AsyncPool._fetch = counted  # type: ignore[method-assign]
    with TestClient(create_app()) as client:
        for _ in range(60):  # start-up work in the app's threads (code set index) first
            t = time.process_time()
            time.sleep(0.5)
            if time.process_time() - t < 0.02:
                break
        user = who.readers[0]
        headers = client_headers(client, user, who.secrets[user])
        r = client.post("/api/v1/work/next", json={"queue": "records"}, headers=headers)
        r.raise_for_status()
        item = int(r.json()["id"])
        if o.codes:
            codes = {"diagnoses": [{"code": "J18.9"}, {"code": "R05.9"}], "procedures": []}
            client.put(f"/api/v1/work/{item}/codes", json=codes, headers=headers)

        def view() -> None:
            client.get(f"/api/v1/work/{item}", headers=headers).raise_for_status()

        def healthz() -> None:
            client.get("/healthz").raise_for_status()

        out: list[str] = []
        for name, call in (("view", view), ("healthz", healthz)):
            for _ in range(20):
                call()
            statements.clear()
            t, w = time.process_time(), time.perf_counter()
            for _ in range(o.views):
                call()
            cpu, wall = time.process_time() - t, time.perf_counter() - w
            out.append(
                f"{name}: {len(statements) / o.views:.1f} statements, "
                f"{cpu / o.views * 1000:.2f} ms CPU, "
                f"{wall / o.views * 1000:.2f} ms wall per request"
            )
        statements.clear()
        view()
        out.append("statements of one view:")
        out.extend(f"  {s}" for s in statements)
        out.extend(spy(view, seconds=o.seconds, top=o.top))
    return "\n".join(out)


def spy(call: Any, *, seconds: int, top: int) -> list[str]:
    """py-spy this process while `call` runs in a loop; inclusive and own shares by frame."""
    f = Path(tempfile.mkdtemp(prefix="chartdesk-view-spy-")) / "raw.txt"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(os.getpid()),
            "--duration",
            str(seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--gil",
            "-o",
            str(f),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    n = 0
    while proc.poll() is None:
        call()
        n += 1
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for stack, count in samples([f]):
        total += count
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    out = [f"py-spy: {total} GIL samples over {n} views"]
    for title, table in (("inclusive", inclusive), ("own", own)):
        out.append(f"top {top} frames by {title} share:")
        for frame, k in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"  {k / max(1, total):6.1%}  {frame}")
    return out


if __name__ == "__main__":
    main()
