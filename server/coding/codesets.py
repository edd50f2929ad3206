"""Code sets: ICD-10-CM from simple-icd-10-cm, ICD-10-PCS, HCPCS Level II and CPT.

ICD-10-CM ships with the `simple-icd-10-cm` package (CMS April 2026 release) and is held in
an in-memory index built once per process: codes sorted for prefix search and an inverted
index of description words. ICD-10-PCS, HCPCS and CPT are always checked for format; once
a file is loaded with `chartdesk codesets load pcs|hcpcs|cpt FILE` (stored in the
`code_set_entry` table), a code must also be in that file. Chartdesk ships no CPT (AMA
licence) and no PCS or HCPCS file.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from server.coding.schemas import Codes
from server.errors import ValidationFailed
from server.models import CodeSetEntry


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
    hcpcs_fixed = re.compile(r"^([A-Z0-9]{5})(\d{5})(\d)(.*)$")
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
        m = hcpcs_fixed.match(line) if system == System.hcpcs else None
        if m:
            if m.group(3) in ("3", "4"):  # continuation lines of a description
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
    rows = parse_code_file(system, path.read_text(encoding="utf-8", errors="replace"))
    unique = dict(rows)
    session.execute(delete(CodeSetEntry).where(col(CodeSetEntry.system) == system))
    session.add_all(
        CodeSetEntry(system=system, code=c, description=d) for c, d in sorted(unique.items())
    )
    session.flush()
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
