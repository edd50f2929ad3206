"""Loading CMS's quarterly claim-edit files: NCCI procedure-to-procedure edits and MUEs.

Files are read as CMS ships them: tab-delimited text (the NCCI PTP `.txt` files), CSV
(the MUE tables, or a PTP table saved as CSV) or an Excel workbook (`.xlsx`, read with
openpyxl in read-only streaming mode, every sheet in order, rows numbered as Excel shows
them), header lines first (copyright notice, column titles), then one edit per line.
The whole file is checked and loaded in the caller's transaction: a malformed or
truncated line (a workbook's row) stops the load with its number and reason, and nothing
is changed. Rows are merged, never deleted: a newer quarter adds
its edits and the deletion dates it reports, so older dates of service keep the edits that
were in force then. The same file again (by SHA-256) is recognised and skipped.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from server.errors import ValidationFailed
from server.models import EditFileLoad, MueEdit, NcciPtpEdit

_PTP: Any = NcciPtpEdit.__table__  # type: ignore[attr-defined]
_MUE: Any = MueEdit.__table__  # type: ignore[attr-defined]
KINDS = {"ncci-ptp": ("practitioner", "hospital"), "mue": ("practitioner", "hospital", "dme")}
CODE_RE = re.compile(r"^[0-9A-Z]{4}[0-9A-Z]$")
BATCH = 5000

Progress = Callable[[int, int], None]  # (lines read, lines in the file)


class FileRejected(ValidationFailed):
    """A claim-edit file that cannot be loaded: the line and the reason."""

    code = "file_rejected"


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    kind: str
    setting: str
    quarter: str
    rows: int
    already_loaded: bool


def _reject(line: int, reason: str, where: str = "line") -> FileRejected:
    """A file refused at `line` (`where` is "line", or "row" in a workbook)."""
    return FileRejected(
        f"{where} {line}: {reason}; nothing was loaded.",
        details=[{"loc": [where, line], "msg": reason}],
    )


def is_xlsx(path: Path) -> bool:
    """Whether `path` is an Excel workbook (by name: CMS names them .xlsx)."""
    return path.suffix.lower() in (".xlsx", ".xlsm")


def _check_setting(kind: str, setting: str) -> None:
    if kind not in KINDS:
        raise ValidationFailed(f"Unknown edit file kind {kind!r}: {' or '.join(KINDS)}.")
    if setting not in KINDS[kind]:
        raise ValidationFailed(
            f"Unknown setting {setting!r} for {kind}: use {', '.join(KINDS[kind])}.",
            details=[{"loc": ["setting"], "msg": "|".join(KINDS[kind])}],
        )


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line; tab-delimited, CSV or XLSX (rows)."""
    if is_xlsx(path):
        yield from _xlsx_rows(path)
        return
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        head = f.read(8192)
        f.seek(0)
        if "\t" in head:
            reader: Any = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(f)
        start = 1
        for fields in reader:
            number, start = start, reader.line_num + 1
            cells = [c.strip() for c in fields]
            while cells and not cells[-1]:
                cells.pop()
            if cells:
                yield number, cells


def _cell_text(value: object) -> str:
    """A workbook cell as the text file would have it: dates YYYYMMDD, whole numbers bare."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of every non-blank row of every sheet, streamed (read-only mode).

    A code typed as a number in Excel (00100 shown as 100) gets its leading zeros back in
    the code columns (the first, and the second of a PTP table) when it is all digits.
    """
    import openpyxl  # a dependency only the XLSX path needs

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zipfile/XML/openpyxl errors alike
        raise FileRejected(
            f"not a readable XLSX workbook ({type(exc).__name__}); nothing was loaded.",
            details=[{"loc": ["file"], "msg": "not a readable XLSX workbook"}],
        ) from None
    number = 0
    try:
        for sheet in book.worksheets:
            number = 0
            rows = sheet.iter_rows(values_only=True)
            while True:
                try:
                    values = next(rows)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - a sheet's XML broken part way
                    raise _reject(
                        number + 1,
                        f"the workbook cannot be read here ({type(exc).__name__})",
                        "row",
                    ) from None
                number += 1
                cells = [_cell_text(v) for v in values]
                for i in (0, 1):
                    if i < len(cells) and cells[i].isdigit() and len(cells[i]) < 5:
                        if isinstance(values[i], int | float):
                            cells[i] = cells[i].zfill(5)
                while cells and not cells[-1]:
                    cells.pop()
                if cells:
                    yield number, cells
    finally:
        book.close()


def _xlsx_rows_total(path: Path) -> int:
    """How many rows the workbook's sheets say they have (for the progress bar)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - reported when the rows are read
        return 0
    try:
        return sum(int(s.max_row or 0) for s in book.worksheets)
    finally:
        book.close()


def _line_count(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines."""
    digest, lines = hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def _yyyymmdd(value: str, line: int, what: str) -> date:
    if not re.fullmatch(r"\d{8}", value):
        raise _reject(line, f"{what} {value[:20]!r} is not a date YYYYMMDD")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise _reject(line, f"{what} {value!r} is not a real date") from None


def quarter_of(day: date) -> str:
    """The calendar quarter of a day, as CMS names its files' quarters (2026Q1)."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def quarter_from_name(name: str) -> str | None:
    """The quarter a CMS file name tells: NCCI version vXYr (v320r0 = 2026Q1) or Eff_MM-DD-YYYY."""
    m = re.search(r"v(\d{2})(\d)r\d", name, re.IGNORECASE)
    if m and int(m.group(2)) <= 3:
        return f"{1994 + int(m.group(1))}Q{int(m.group(2)) + 1}"
    day = effective_from_name(name)
    return quarter_of(day) if day else None


def effective_from_name(name: str) -> date | None:
    """The effective date in a CMS MUE file name (`..._Eff_01-01-2026...`), if any."""
    m = re.search(r"(\d{2})-(\d{2})-(\d{4})", name)
    if not m:
        return None
    try:
        return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
    except ValueError:
        return None


# ---------------------------------------------------------------- NCCI PTP


@dataclass(frozen=True)
class PtpRow:
    """One line of a PTP file."""

    column1: str
    column2: str
    prior_1996: bool
    effective: date
    deleted: date | None
    modifier: str
    rationale: str


def parse_ptp_line(number: int, cells: list[str], where: str = "line") -> PtpRow:
    """A PTP data line (Column 1, Column 2, *, Effective, Deletion or *, Modifier, Rationale)."""
    try:
        return _parse_ptp_line(number, cells)
    except FileRejected as exc:
        raise _reject(number, str(exc.details[0]["msg"]), where) from None


def _parse_ptp_line(number: int, cells: list[str]) -> PtpRow:
    if len(cells) < 6:
        raise _reject(number, f"{len(cells)} fields, a PTP edit has 6 or 7 (truncated?)")
    if len(cells) > 7:
        raise _reject(number, f"{len(cells)} fields, a PTP edit has 6 or 7")
    c1, c2, prior, eff, dele, modifier = (c.upper() for c in cells[:6])
    for what, code in (("column 1", c1), ("column 2", c2)):
        if not CODE_RE.match(code):
            raise _reject(number, f"{what} {code[:20]!r} is not a CPT/HCPCS code")
    if prior not in ("", "*"):
        raise _reject(number, f"the prior-to-1996 field is {prior[:20]!r}, not '*' or empty")
    effective = _yyyymmdd(eff, number, "effective date")
    deleted = None if dele in ("*", "") else _yyyymmdd(dele, number, "deletion date")
    if deleted is not None and deleted < effective:
        raise _reject(number, "the deletion date is before the effective date")
    if modifier not in ("0", "1", "9"):
        raise _reject(number, f"modifier indicator {modifier[:20]!r} is not 0, 1 or 9")
    rationale = cells[6] if len(cells) > 6 else ""
    if len(rationale) > 200:
        raise _reject(number, "the rationale is longer than 200 characters")
    return PtpRow(c1, c2, prior == "*", effective, deleted, modifier, rationale)


def _upsert(session: Session, model: Any, keys: list[str], update: dict[str, Any]) -> Any:
    """An INSERT ... ON CONFLICT DO UPDATE statement for this database."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model)
    values = {
        name: (expr(stmt.excluded) if callable(expr) else expr) for name, expr in update.items()
    }
    return stmt.on_conflict_do_update(index_elements=keys, set_=values)


def _ptp_write(session: Session, rows: list[dict[str, Any]]) -> None:
    table = _PTP
    stmt = _upsert(
        session,
        table,
        ["setting", "column1", "column2", "effective"],
        # A later file reports the deletion date; a file without it never clears one.
        {"deleted": lambda ex: func.coalesce(ex.deleted, table.c.deleted)},
    )
    session.execute(stmt, rows)


# ---------------------------------------------------------------- MUE


@dataclass(frozen=True)
class MueRow:
    """One line of an MUE table."""

    code: str
    value: int
    adjudication: int
    rationale: str


def parse_mue_line(number: int, cells: list[str], where: str = "line") -> MueRow:
    """An MUE data line (code, MUE value, adjudication indicator, rationale)."""
    try:
        return _parse_mue_line(number, cells)
    except FileRejected as exc:
        raise _reject(number, str(exc.details[0]["msg"]), where) from None


def _parse_mue_line(number: int, cells: list[str]) -> MueRow:
    if len(cells) < 3:
        raise _reject(number, f"{len(cells)} fields, an MUE has 3 or 4 (truncated?)")
    if len(cells) > 4:
        raise _reject(number, f"{len(cells)} fields, an MUE has 3 or 4")
    code = cells[0].upper()
    if not CODE_RE.match(code):
        raise _reject(number, f"{code[:20]!r} is not a CPT/HCPCS code")
    if not re.fullmatch(r"\d{1,5}", cells[1]):
        raise _reject(number, f"MUE value {cells[1][:20]!r} is not a whole number")
    m = re.match(r"^([123])(\b|\s|$)", cells[2])
    if not m:
        raise _reject(
            number,
            f"adjudication indicator {cells[2][:40]!r} is not 1 (line), 2 or 3 (date of service)",
        )
    rationale = cells[3] if len(cells) > 3 else ""
    if len(rationale) > 200:
        raise _reject(number, "the rationale is longer than 200 characters")
    return MueRow(code, int(cells[1]), int(m.group(1)), rationale)


def _mue_write(session: Session, rows: list[dict[str, Any]]) -> None:
    stmt = _upsert(
        session,
        _MUE,
        ["setting", "code", "effective"],
        # The same quarter loaded again (a corrected file) takes the new figures.
        {
            "value": lambda ex: ex.value,
            "adjudication": lambda ex: ex.adjudication,
            "rationale": lambda ex: ex.rationale,
        },
    )
    session.execute(stmt, rows)


# ---------------------------------------------------------------- loading


def load(
    session: Session,
    *,
    kind: str,
    setting: str,
    path: Path,
    quarter: str | None = None,
    effective: date | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """Load one CMS edit file of `kind` (ncci-ptp | mue) for `setting`; flushes, never commits.

    `quarter` labels the edits in messages (default: from the file name, else from the
    newest effective date). MUE rows take `effective` (default: the date in the file name,
    `..._Eff_01-01-2026...`): the table is in force until a newer table is.
    """
    _check_setting(kind, setting)
    if quarter is not None and not re.fullmatch(r"[\w .:/-]{1,40}", quarter):
        raise ValidationFailed(
            "The quarter label is 1-40 letters, digits, spaces or . : / - (e.g. 2026Q1).",
            details=[{"loc": ["quarter"], "msg": "1-40 characters"}],
        )
    sha, total = _line_count(path)
    where = "line"
    if is_xlsx(path):
        where, total = "row", _xlsx_rows_total(path)
    loaded = session.exec(
        select(EditFileLoad).where(
            EditFileLoad.kind == kind, EditFileLoad.setting == setting, EditFileLoad.sha256 == sha
        )
    ).first()
    if loaded is not None:
        return LoadResult(kind, setting, loaded.quarter, loaded.rows, already_loaded=True)
    if kind == "mue":
        effective = effective or effective_from_name(path.name)
        if effective is None:
            raise ValidationFailed(
                "Give the MUE table's effective date (--effective YYYY-MM-DD): the file name "
                "does not carry it."
            )
    label = quarter or quarter_from_name(path.name) or (quarter_of(effective) if effective else "")
    batch: list[dict[str, Any]] = []
    seen_data, count, newest = False, 0, date.min
    write = _ptp_write if kind == "ncci-ptp" else _mue_write
    for number, cells in _rows(path):
        if not CODE_RE.match(cells[0].upper()):
            if seen_data:
                raise _reject(number, f"{cells[0][:20]!r} is not a CPT/HCPCS code", where)
            continue  # header lines before the first edit
        seen_data = True
        if kind == "ncci-ptp":
            ptp = parse_ptp_line(number, cells, where)
            newest = max(newest, ptp.effective)
            batch.append(
                {
                    "setting": setting,
                    "column1": ptp.column1,
                    "column2": ptp.column2,
                    "effective": ptp.effective,
                    "deleted": ptp.deleted,
                    "modifier": ptp.modifier,
                    "rationale": ptp.rationale,
                    "prior_1996": ptp.prior_1996,
                    "quarter": label or "?",
                }
            )
        else:
            mue = parse_mue_line(number, cells, where)
            batch.append(
                {
                    "setting": setting,
                    "code": mue.code,
                    "effective": effective,
                    "value": mue.value,
                    "adjudication": mue.adjudication,
                    "rationale": mue.rationale,
                    "quarter": label,
                }
            )
        count += 1
        if len(batch) >= BATCH:
            write(session, _dedupe(batch, kind))
            batch = []
            if progress:
                progress(number, total)
    if not count:
        raise FileRejected(f"No {kind} edits found in the file; nothing was loaded.")
    if batch:
        write(session, _dedupe(batch, kind))
    if not label:  # a PTP file whose name tells no quarter: its newest edit's
        label = quarter_of(newest)
        session.execute(
            _PTP.update()
            .where(_PTP.c.setting == setting, _PTP.c.quarter == "?")
            .values(quarter=label)
        )
    session.add(
        EditFileLoad(
            kind=kind,
            setting=setting,
            sha256=sha,
            file_name=path.name[:200],
            quarter=label,
            rows=count,
        )
    )
    session.flush()
    if progress:
        progress(total, total)
    return LoadResult(kind, setting, label, count, already_loaded=False)


def load_any(
    session: Session,
    *,
    kind: str,
    setting: str,
    path: Path,
    quarter: str | None = None,
    effective: date | None = None,
    progress: Progress | None = None,
) -> LoadResult:
    """`load` for a file, or for every `.txt`/`.csv`/`.xlsx` part of a zip as CMS ships them (one
    transaction: a bad part stops them all). Parts without edits (a read-me) are skipped."""
    if path.suffix.lower() != ".zip":
        return load(
            session,
            kind=kind,
            setting=setting,
            path=path,
            quarter=quarter,
            effective=effective,
            progress=progress,
        )
    _check_setting(kind, setting)
    results: list[LoadResult] = []
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as tmp:
        names = sorted(
            n
            for n in archive.namelist()
            if n.lower().endswith((".txt", ".csv", ".xlsx")) and not n.endswith("/")
        )
        for name in names:
            part = Path(tmp) / Path(name).name
            with archive.open(name) as src, part.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            try:
                results.append(
                    load(
                        session,
                        kind=kind,
                        setting=setting,
                        path=part,
                        quarter=quarter or quarter_from_name(path.name),
                        effective=effective or effective_from_name(path.name),
                        progress=progress,
                    )
                )
            except FileRejected as exc:
                if exc.details:  # a bad line: the whole archive stops
                    raise FileRejected(
                        f"{Path(name).name}: {exc.message}", details=exc.details
                    ) from None
                continue  # no edits at all in this part
    if not results:
        raise FileRejected(f"No {kind} edits found in {path.name}; nothing was loaded.")
    return LoadResult(
        kind,
        setting,
        results[0].quarter,
        sum(r.rows for r in results),
        already_loaded=all(r.already_loaded for r in results),
    )


def _dedupe(batch: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """One row per key within a batch (ON CONFLICT cannot touch a row twice in a statement)."""
    keys = ("column1", "column2", "effective") if kind == "ncci-ptp" else ("code", "effective")
    return list({tuple(r[k] for k in keys): r for r in batch}.values())
