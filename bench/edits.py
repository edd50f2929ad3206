"""Claim-edit check latency over NCCI PTP / MUE tables of CMS's size (in-process, no server).

Writes a synthetic PTP file (`--ptp` rows, default 1,000,000, in the CMS tab-delimited
layout) and an MUE table (`--mue` codes) over made-up code numbers, loads both through the
real loader into a throwaway SQLite database (or `--url`), then times the whole check of
the codes (`coding.service.validate`: code sets, tabular notes, MCE, modifiers, PTP, MUE)
for a claim of 25 diagnoses and 20 CPT lines, beside the PTP+MUE part alone. Target: p95
under 20 ms. The rows are synthetic load, not coding facts.
Usage: .venv/bin/python -m bench.edits [--ptp N] [--mue N] [--rounds N] [--url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlmodel import Session, SQLModel, create_engine

from server.coding import service as coding_service
from server.coding.schemas import Codes, DiagnosisLine, ProcedureLine
from server.edits import files
from server.edits import service as edits_service

DX = [
    "E11.9", "I10", "J45.909", "E78.5", "N18.30", "I50.9", "K21.9", "M17.11", "Z79.4",
    "F32.A", "G47.33", "E66.9", "Z68.30", "I25.10", "E03.9", "J44.9", "D64.9", "M54.50",
    "R05.9", "Z87.891", "I48.91", "N40.0", "E55.9", "M81.0", "Z95.1",
]  # fmt: skip


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of xs."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def _codes(n: int) -> list[str]:
    return [f"{10000 + i * 7 % 89999:05d}" for i in range(n)]


def main() -> None:
    """Load the tables, run the checks, print percentiles."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--ptp", type=int, default=1_000_000)
    parser.add_argument("--mue", type=int, default=15_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    rng = random.Random(15)  # noqa: S311 - synthetic load
    work = Path(tempfile.mkdtemp(prefix="bench-edits-"))
    engine = create_engine(args.url or f"sqlite:///{work / 'edits.db'}")
    SQLModel.metadata.create_all(engine)
    codes = _codes(max(args.mue, 2000))
    ptp = work / "ccipra-v320r0-f1.txt"
    with ptp.open("w") as f:
        f.write("Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\t"
                "Deletion Date *=no data\tModifier\tPTP Edit Rationale\n")  # fmt: skip
        seen: set[tuple[str, str]] = set()
        while len(seen) < args.ptp:
            a, b = rng.sample(codes, 2)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            f.write(f"{a}\t{b}\t\t20200101\t*\t{rng.choice('0119')}\tbench\n")
    mue = work / "MCR_MUE_PractitionerServices_Eff_01-01-2026.csv"
    mue.write_text(
        "HCPCS/CPT Code,MUE Values,MUE Adjudication Indicator,MUE Rationale\n"
        + "".join(f"{c},{rng.randint(1, 4)},{rng.choice('123')} x,bench\n" for c in codes)
    )
    with Session(engine) as s:
        t = time.perf_counter()
        files.load(s, kind="ncci-ptp", setting="practitioner", path=ptp)
        files.load(s, kind="mue", setting="practitioner", path=mue)
        s.commit()
        print(f"load: {time.perf_counter() - t:.1f} s for {args.ptp} PTP rows, {len(codes)} MUEs")  # noqa: T201
    claim = Codes(
        diagnoses=[DiagnosisLine(code=c) for c in DX],
        procedures=[
            ProcedureLine(code=c, units=rng.randint(1, 3), dx_pointers=[1])
            for c in rng.sample(codes, 20)
        ],
    )
    ctx = edits_service.ClaimContext(
        inpatient=False,
        setting="practitioner",
        date_of_service=date(2026, 10, 1),
        payer_class="medicare",
        age=70,
        sex="female",
    )
    with Session(engine) as s:
        coding_service.validate(s, codes=claim, context=ctx)  # warm the caches
        for label, run in (
            (
                "whole check (validate)",
                lambda: coding_service.validate(s, codes=claim, context=ctx),
            ),
            (
                "claim edits only (edits.check)",
                lambda: edits_service.check(s, codes=claim, context=ctx),
            ),
        ):
            times = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                run()
                times.append((time.perf_counter() - t) * 1000)
            print(  # noqa: T201
                f"{label}: p50 {statistics.median(times):.2f} ms, p95 {pct(times, 95):.2f} ms, "
                f"p99 {pct(times, 99):.2f} ms (target p95 <= 20 ms)"
            )


if __name__ == "__main__":
    main()
