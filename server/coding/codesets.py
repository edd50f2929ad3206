"""Code sets: ICD-10-CM from simple-icd-10-cm, ICD-10-PCS, HCPCS Level II and CPT.

ICD-10-CM ships with the `simple-icd-10-cm` package (CMS April 2026 release) and is held in
an in-memory index built once per process: codes sorted for prefix search and an inverted
index of description words. ICD-10-PCS, HCPCS and CPT are always checked for format; once
a file is loaded with `chartdesk codesets load pcs|hcpcs|cpt FILE` (stored in the
`code_set_entry` table), a code must also be in that file. Chartdesk ships no CPT (AMA
licence) and no PCS or HCPCS file. The CMS HCPCS quarterly file also gives each code's
added, action effective and termination dates (`hcpcs_period`, one row per code and dates,
older quarters kept): a HCPCS line is checked against them on its date of service.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from server.coding.schemas import Codes
from server.errors import ValidationFailed
from server.models import CodeSetEntry, HcpcsPeriod


class System(StrEnum):
    """Code systems a line can use."""

    icd10cm = "ICD10CM"
    pcs = "PCS"
    cpt = "CPT"
    hcpcs = "HCPCS"


LOADABLE = (System.pcs, System.hcpcs, System.cpt)
ICD10CM_RELEASE = "CMS April 2026 release"

PCS_RE = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")
CPT_RE = re.compile(r"^(\d{5}|\d{4}[FTU])$")
HCPCS_RE = re.compile(r"^[A-V]\d{4}$")
MODIFIER_RE = re.compile(r"^[0-9A-Z]{2}$")
ICD_SHAPE_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
WORD_RE = re.compile(r"[a-z0-9]+")


def normalise(code: str) -> str:
    """Upper case, no spaces, no dot: the form codes are compared and stored in."""
    return code.strip().upper().replace(".", "").replace(" ", "")


def dotted(code: str) -> str:
    """An ICD-10-CM code with its dot after the third character (E119 -> E11.9)."""
    code = normalise(code)
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


@dataclass(frozen=True)
class IcdCode:
    """One ICD-10-CM category, subcategory or code."""

    code: str  # normalised, no dot
    display: str  # with dot
    description: str
    billable: bool  # a leaf: valid on a claim
    manifestation: bool  # "in diseases classified elsewhere": never principal
    code_first: bool  # a "code first" note applies: the underlying condition goes first


@dataclass(frozen=True)
class Hit:
    """A search result."""

    system: str
    code: str
    description: str
    billable: bool


class Icd10cmIndex:
    """Every ICD-10-CM code with prefix and word search, built once."""

    def __init__(self) -> None:
        import simple_icd_10_cm as cm

        entries: list[IcdCode] = []
        for display in cm.get_all_codes(with_dots=True):
            if cm.is_chapter_or_block(display):
                continue
            description = cm.get_description(display)
            entries.append(
                IcdCode(
                    code=normalise(display),
                    display=display,
                    description=description,
                    billable=cm.is_leaf(display),
                    manifestation="classified elsewhere" in description.lower(),
                    code_first=bool(cm.get_code_first(display, search_in_ancestors=True)),
                )
            )
        entries.sort(key=lambda e: e.code)
        self.entries = entries
        self.codes = [e.code for e in entries]
        self.by_code = {e.code: e for e in entries}
        postings: dict[str, list[int]] = {}
        for i, entry in enumerate(entries):
            for word in set(WORD_RE.findall(entry.description.lower())):
                postings.setdefault(word, []).append(i)
        self.postings = {w: frozenset(p) for w, p in postings.items()}
        self.words = sorted(postings)

    def get(self, code: str) -> IcdCode | None:
        """The code, if it exists (any form: E11.9, e119)."""
        return self.by_code.get(normalise(code))

    def prefix(self, prefix: str, limit: int) -> list[IcdCode]:
        """Codes starting with `prefix`, in code order."""
        p = normalise(prefix)
        start = bisect.bisect_left(self.codes, p)
        found: list[IcdCode] = []
        for i in range(start, len(self.codes)):
            if not self.codes[i].startswith(p) or len(found) >= limit:
                break
            found.append(self.entries[i])
        return found

    def _word_matches(self, word: str) -> frozenset[int]:
        start = bisect.bisect_left(self.words, word)
        hits: set[int] = set()
        for i in range(start, len(self.words)):
            if not self.words[i].startswith(word):
                break
            hits |= self.postings[self.words[i]]
            if len(hits) > 20000:
                break
        return frozenset(hits)

    def words_search(self, query: str, limit: int) -> list[IcdCode]:
        """Codes whose description has every word of `query` (as a word prefix).

        Billable codes first; then those that hold the words as typed, in order ("type 2
        diabetes" before "type 1 ... stage 2"); then those that begin with them; then
        shorter descriptions, then code order.
        """
        typed = WORD_RE.findall(query.lower())
        phrase = " ".join(typed)
        words = sorted(set(typed), key=len, reverse=True)
        if not words:
            return []
        matched: frozenset[int] | None = None
        for word in words:
            hits = self._word_matches(word)
            matched = hits if matched is None else matched & hits
            if not matched:
                return []
        assert matched is not None  # noqa: S101

        def rank(i: int) -> tuple[bool, bool, bool, int, int]:
            entry = self.entries[i]
            text = " ".join(WORD_RE.findall(entry.description.lower()))
            return (
                not entry.billable,
                phrase not in text,
                not text.startswith(phrase),
                len(entry.description),
                i,
            )

        ranked = sorted(matched, key=rank)
        return [self.entries[i] for i in ranked[:limit]]


_INDEX_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _build_icd10cm() -> Icd10cmIndex:
    return Icd10cmIndex()


def icd10cm() -> Icd10cmIndex:
    """The process-wide ICD-10-CM index (built on first use, a few seconds)."""
    with _INDEX_LOCK:
        return _build_icd10cm()


def search(session: Session, *, system: str, query: str, limit: int = 20) -> list[Hit]:
    """Codes of `system` matching `query`: by code prefix, or by description words."""
    query = query.strip()
    if not query:
        return []
    if system == System.icd10cm:
        index = icd10cm()
        looks_like_code = bool(re.match(r"^[A-Za-z]\d", query)) and " " not in query
        found = index.prefix(query, limit) if looks_like_code else []
        if not found:
            found = index.words_search(query, limit)
        return [Hit(System.icd10cm, e.display, e.description, e.billable) for e in found]
    if system not in {s.value for s in LOADABLE}:
        raise ValidationFailed(
            "Unknown code system.",
            details=[{"loc": ["system"], "msg": "ICD10CM, PCS, CPT or HCPCS"}],
        )
    code_prefix = normalise(query)
    stmt = select(CodeSetEntry).where(CodeSetEntry.system == system)
    if re.match(r"^[0-9A-Z]+$", code_prefix) and len(code_prefix) <= 7:
        by_code = list(
            session.exec(
                stmt.where(col(CodeSetEntry.code).startswith(code_prefix))
                .order_by(col(CodeSetEntry.code))
                .limit(limit)
            ).all()
        )
        if by_code:
            return [Hit(system, e.code, e.description, True) for e in by_code]
    words_stmt = stmt
    for word in WORD_RE.findall(query.lower())[:5]:
        words_stmt = words_stmt.where(func.lower(CodeSetEntry.description).contains(word))
    rows = session.exec(words_stmt.order_by(col(CodeSetEntry.code)).limit(limit)).all()
    return [Hit(system, e.code, e.description, True) for e in rows]


# ---------------------------------------------------------------- loaded code sets


def loaded_count(session: Session, *, system: str) -> int:
    """How many codes of `system` are loaded (0: only the format is checked)."""
    return int(
        session.exec(
            select(func.count()).select_from(CodeSetEntry).where(CodeSetEntry.system == system)
        ).one()
    )


def loaded_codes(session: Session, *, system: str, codes: Iterable[str]) -> set[str]:
    """Which of `codes` are in the loaded file of `system`."""
    wanted = sorted({normalise(c) for c in codes})
    if not wanted:
        return set()
    rows = session.exec(
        select(CodeSetEntry.code).where(
            CodeSetEntry.system == system, col(CodeSetEntry.code).in_(wanted)
        )
    ).all()
    return set(rows)


def format_ok(system: str, code: str) -> bool:
    """Whether `code` has the shape of a `system` code."""
    code = normalise(code)
    if system == System.pcs:
        return bool(PCS_RE.match(code))
    if system == System.cpt:
        return bool(CPT_RE.match(code))
    if system == System.hcpcs:
        return bool(HCPCS_RE.match(code))
    if system == System.icd10cm:
        return bool(ICD_SHAPE_RE.match(code))
    return False


# The CMS HCPCS record layout (HCPCyyyy_recordlayout.txt, 320 columns; 1-based, inclusive):
# code 1-5, sequence 6-10, record id 11 (3 the first line of a procedure, 4 its further
# description lines, 7 and 8 the same for a modifier), long description 12-91, ..., code
# added date 269-276, action effective date 277-284, termination date 285-292 ("last date
# for which a procedure or modifier code may be used"; CCYYMMDD, blank when none), action
# code 293, filler 294-320. Checked against a CMS contractor file (HCPC2016_CONTR_ANWEB).
HCPCS_DATES = {"added": (269, 276), "action_effective": (277, 284), "terminated": (285, 292)}
HCPCS_ACTION = 293
HCPCS_FIRST, HCPCS_MORE, MODIFIER_FIRST, MODIFIER_MORE = "3", "4", "7", "8"
_HCPCS_FIXED = re.compile(r"^([A-Z0-9]{5})(\d{5})(\d)(.*)$")
_MODIFIER_FIXED = re.compile(r"^ {3}[A-Z0-9]{2}\d{5}[78]")
_FIELD_NAMES = {"added": "ADD DT", "action_effective": "ACT EFF DT", "terminated": "TERM DT"}


@dataclass(frozen=True)
class HcpcsRecord:
    """A HCPCS Level II code's dates as one line of the CMS quarterly file gives them."""

    code: str
    added: date | None
    action_effective: date | None
    terminated: date | None
    action_code: str


def _hcpcs_date(raw: str) -> date | None:
    """A CCYYMMDD field (blank: None); ValueError when it is not a date."""
    raw = raw.strip()
    if not raw:
        return None
    if len(raw) != 8 or not raw.isdigit():
        raise ValueError(raw)
    return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))


def parse_hcpcs_dates(text: str) -> list[HcpcsRecord]:
    """The dates of each code in a CMS HCPCS fixed-width file (first lines of procedure
    records); ValidationFailed names the line and field of a date that is not one. Files
    in another form (CSV) carry no dates: []."""
    records: list[HcpcsRecord] = []
    bad: list[dict[str, object]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        m = _HCPCS_FIXED.match(raw)
        if not m or m.group(3) != HCPCS_FIRST:
            continue
        line = raw.ljust(320)
        dates: dict[str, date | None] = {}
        for field, (start, end) in HCPCS_DATES.items():
            try:
                dates[field] = _hcpcs_date(line[start - 1 : end])
            except ValueError:
                bad.append(
                    {
                        "loc": ["line", number],
                        "msg": f"line {number}: {_FIELD_NAMES[field]} {line[start - 1 : end]!r} "
                        f"(columns {start}-{end}) is not a date (CCYYMMDD)",
                    }
                )
        if len(dates) == len(HCPCS_DATES):
            records.append(
                HcpcsRecord(
                    code=m.group(1),
                    added=dates["added"],
                    action_effective=dates["action_effective"],
                    terminated=dates["terminated"],
                    action_code=line[HCPCS_ACTION - 1].strip(),
                )
            )
    if bad:
        raise ValidationFailed("The HCPCS file has dates that are not dates.", details=bad[:50])
    return records


@dataclass(frozen=True)
class HcpcsDates:
    """A code's dates from the newest quarterly file that lists it."""

    code: str
    added: date | None
    action_effective: date | None
    terminated: date | None
    source: str

    @property
    def start(self) -> date | None:
        return self.added or self.action_effective

    def valid_on(self, day: date) -> bool:
        """Whether a date of service falls between the code's start and termination."""
        if self.start is not None and day < self.start:
            return False
        return self.terminated is None or day <= self.terminated

    def why_not(self, day: date) -> str:
        """Why the code is not valid on `day`, with its dates and the file they came from."""
        if self.terminated is not None and day > self.terminated:
            what = f"it was terminated on {self.terminated.isoformat()}"
            if self.start is not None:
                what = f"it was valid from {self.start.isoformat()}; {what}"
        else:
            assert self.start is not None  # noqa: S101 - only then is it not yet valid
            what = f"it is not effective until {self.start.isoformat()}"
        return (
            f"{self.code} is not a valid HCPCS Level II code for a date of service of "
            f"{day.isoformat()}: {what} (CMS HCPCS quarterly file {self.source})."
        )


def hcpcs_dates(session: Session, *, codes: Iterable[str]) -> dict[str, HcpcsDates]:
    """The dates of each of `codes` from the newest loaded quarter that lists it (codes
    with no dates loaded are absent)."""
    wanted = sorted({normalise(c) for c in codes})
    if not wanted:
        return {}
    rows = session.exec(
        select(HcpcsPeriod)
        .where(col(HcpcsPeriod.code).in_(wanted))
        .order_by(col(HcpcsPeriod.action_effective).asc().nulls_first(), col(HcpcsPeriod.id))
    ).all()
    out: dict[str, HcpcsDates] = {}
    for row in rows:  # oldest first: the newest row of a code wins
        out[row.code] = HcpcsDates(
            row.code, row.added, row.action_effective, row.terminated, row.source
        )
    return out


def load_hcpcs_dates(session: Session, *, records: list[HcpcsRecord], source: str) -> int:
    """Add the dates of a quarterly file, keeping those of older quarters (dates already
    held for a code are not added again: loading a file twice changes nothing)."""
    codes = sorted({r.code for r in records})
    held: set[tuple[str, date | None, date | None, date | None]] = set()
    for start in range(0, len(codes), 500):
        for row in session.exec(
            select(HcpcsPeriod).where(col(HcpcsPeriod.code).in_(codes[start : start + 500]))
        ).all():
            held.add((row.code, row.added, row.action_effective, row.terminated))
    added = 0
    for r in records:
        key = (r.code, r.added, r.action_effective, r.terminated)
        if key in held:
            continue
        held.add(key)
        session.add(
            HcpcsPeriod(
                code=r.code,
                added=r.added,
                action_effective=r.action_effective,
                terminated=r.terminated,
                action_code=r.action_code,
                source=source[:200],
            )
        )
        added += 1
    session.flush()
    return added


def parse_code_file(system: str, text: str) -> list[tuple[str, str]]:
    """(code, description) pairs from a code file; ValidationFailed names bad lines.

    Accepted forms: CSV or tab-separated with the code first (a header row is skipped);
    the CMS ICD-10-PCS order file (`icd10pcs_order_YYYY.txt`: order number, code, header
    flag, short and long description in fixed columns; header rows are skipped); the CMS
    HCPCS fixed-width file (`HCPCyyyy_..._ANWEB.txt`: code in columns 1-5, long description
    from column 12). Every code must have the format of `system`.
    """
    rows: list[tuple[str, str]] = []
    bad: list[dict[str, object]] = []
    lines = text.splitlines()
    pcs_order = re.compile(r"^\d{5} ([0-9A-Z ]{7}) ([01]) (.{1,60}) ?(.*)$")
    delimiter = "\t" if any("\t" in line for line in lines[:5]) else ","
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        m = pcs_order.match(line) if system == System.pcs else None
        if m:
            if m.group(2) == "1":
                rows.append((m.group(1).strip(), (m.group(4) or m.group(3)).strip()[:300]))
            continue
        if system == System.hcpcs and _MODIFIER_FIXED.match(line):
            continue  # a modifier's record (record id 7 or 8)
        m = _HCPCS_FIXED.match(line) if system == System.hcpcs else None
        if m:
            if m.group(3) in (HCPCS_MORE, MODIFIER_MORE):  # more lines of a description
                continue
            rows.append((m.group(1), m.group(4)[:80].strip()))
            continue
        fields = next(csv.reader(io.StringIO(line), delimiter=delimiter))
        if len(fields) == 1 and " " in fields[0].strip():
            fields = fields[0].strip().split(None, 1)
        code = normalise(fields[0]) if fields else ""
        description = fields[1].strip() if len(fields) > 1 else ""
        if format_ok(system, code):
            rows.append((code, description[:300]))
        elif number == 1:
            continue  # a header row
        else:
            bad.append(
                {"loc": ["line", number], "msg": f"{fields[0][:20]!r} is not a {system} code"}
            )
    if bad:
        raise ValidationFailed(
            f"The {system} file has lines that are not {system} codes.", details=bad[:50]
        )
    if not rows:
        raise ValidationFailed(f"No {system} codes found in the file.")
    return rows


def load(session: Session, *, system: str, path: Path) -> int:
    """Replace the loaded codes of `system` with those in `path`; returns how many."""
    if system not in {s.value for s in LOADABLE}:
        raise ValidationFailed(f"Only {', '.join(s.value for s in LOADABLE)} files are loaded.")
    text = path.read_text(encoding="utf-8", errors="replace")
    rows = parse_code_file(system, text)
    dated = parse_hcpcs_dates(text) if system == System.hcpcs else []
    unique = dict(rows)
    session.execute(delete(CodeSetEntry).where(col(CodeSetEntry.system) == system))
    session.add_all(
        CodeSetEntry(system=system, code=c, description=d) for c, d in sorted(unique.items())
    )
    session.flush()
    if dated:
        load_hcpcs_dates(session, records=dated, source=path.name)
    return len(unique)


def titles(session: Session, *, codes: Codes) -> dict[str, str]:
    """The description of every code on the lines, keyed 'SYSTEM:CODE' as typed (one query
    for the loaded procedure code sets; ICD-10-CM from the in-memory index)."""
    out: dict[str, str] = {}
    index = icd10cm()
    for line in codes.diagnoses:
        found = index.get(normalise(line.code))
        if found is not None:
            out[f"{System.icd10cm}:{line.code}"] = found.description
    wanted = {(p.system.upper(), normalise(p.code)): p.code for p in codes.procedures}
    if wanted:
        rows = session.exec(
            select(CodeSetEntry).where(col(CodeSetEntry.code).in_([code for _, code in wanted]))
        ).all()
        for entry in rows:
            typed = wanted.get((entry.system.upper(), entry.code))
            if typed is not None:
                out[f"{entry.system.upper()}:{typed}"] = entry.description
    return out
