"""ICD-10-CM search latency over the full code set (in-process, no server).

Builds the index once (timed separately), then runs a fixed mix of prefix and word
queries many times and prints p50/p95/p99 per query kind. The target is p95 under 50 ms.
Usage: .venv/bin/python -m bench.codesearch [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from server.coding import codesets

PREFIXES = ["E", "E1", "E11", "E11.6", "I1", "J45.9", "S52.5", "Z", "M54", "T36"]
WORDS = [
    "type 2 diabetes",
    "diab without compl",
    "asthma",
    "fracture of lower end of right radius",
    "hypertension",
    "chronic kidney disease stage 3",
    "pain",
    "acute bronchitis",
    "pneumonia unspecified organism",
    "sepsis",
]


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of xs, in ms."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main() -> None:
    """Build the index, run the query mix, print percentiles."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    t0 = time.perf_counter()
    index = codesets.icd10cm()
    print(f"index build: {time.perf_counter() - t0:.2f} s, {len(index.codes)} codes")  # noqa: T201
    for kind, queries in (("prefix", PREFIXES), ("words", WORDS)):
        times: list[float] = []
        for _ in range(args.rounds):
            for q in queries:
                t = time.perf_counter()
                if kind == "prefix":
                    index.prefix(q, 20)
                else:
                    index.words_search(q, 20)
                times.append((time.perf_counter() - t) * 1000)
        print(  # noqa: T201
            f"{kind:7s} n={len(times)} p50={statistics.median(times):.2f} ms "
            f"p95={pct(times, 95):.2f} ms p99={pct(times, 99):.2f} ms"
        )


if __name__ == "__main__":
    main()
