"""The chargemaster (CDM): the hospital's price list, loaded from its CSV export, and what
a claim line takes from it (revenue code, HCPCS/CPT, description, price).

`chartdesk codesets load cdm FILE`: a CSV with a header naming the columns charge code,
description, revenue code, HCPCS/CPT, price and effective date (in any order). The whole file
is checked and loaded in the caller's transaction: a malformed line stops the load with its
line number and reason, and nothing is changed. Rows are effective-dated and never deleted:
a later price list adds rows, so an old date of service keeps its old price. The same file
again (by SHA-256) is recognised and changes nothing.

Procedures map to charge lines by HCPCS/CPT code; an ICD-10-PCS procedure (inpatient) maps
to a revenue code by `PCS_REVENUE` (its section, or section and body system) and takes the
price of that revenue code's line without a HCPCS code, if the chargemaster has one.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlmodel import Session, col, select

from server.edits.files import FileRejected
from server.models import ChargeItem, EditFileLoad

KIND = "cdm"
DEMO_FILE = Path(__file__).resolve().parent / "data" / "demo_cdm.csv"  # `chartdesk demo`
SETTING = "facility"
Progress = Callable[[int, int], None]

# Header names accepted for each column (lower case, spaces/underscores/slashes folded).
COLUMNS = {
    "charge_code": ("chargecode", "code", "cdm", "cdmcode", "chargenumber"),
    "description": ("description", "desc", "chargedescription"),
    "revenue_code": ("revenuecode", "revcode", "revenue", "ub04revenuecode"),
    "hcpcs": ("hcpcscpt", "hcpcs", "cpt", "cpthcpcs", "hcpcscode", "cptcode"),
    "price": ("price", "charge", "amount", "grosscharge", "standardcharge"),
    "effective": ("effectivedate", "effective", "effectivefrom", "startdate"),
}
HCPCS_RE = re.compile(r"^[0-9A-Z]{4}[0-9A-Z]$")
CHARGE_CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,20}$")

# ICD-10-PCS section (first character), or section + body system, -> NUBC revenue code of the
# department that performs it (UB-04 FL42 categories). Used for inpatient lines that carry a
# PCS code and no HCPCS code.
PCS_REVENUE: dict[str, str] = {
    "0": "0360",  # medical and surgical: operating room services
    "1": "0720",  # obstetrics: labor room / delivery
    "2": "0270",  # placement: medical/surgical supplies
    "3": "0260",  # administration: IV therapy
    "4": "0480",  # measurement and monitoring: cardiology
    "5": "0410",  # extracorporeal assistance: respiratory services
    "6": "0820",  # extracorporeal therapies: hemodialysis
    "7": "0940",  # osteopathic: other therapeutic services
    "8": "0940",  # other procedures
    "9": "0940",  # chiropractic
    "B": "0320",  # imaging: diagnostic radiology
    "C": "0340",  # nuclear medicine
    "D": "0330",  # radiation therapy
    "F": "0420",  # physical rehabilitation: physical therapy
    "G": "0900",  # mental health: behavioral health treatment
    "H": "0944",  # substance abuse treatment
    "X": "0360",  # new technology: operating room services
    "0H": "0761",  # skin and breast (medical and surgical): treatment room
    "0J": "0761",  # subcutaneous tissue and fascia: treatment room
    "B2": "0482",  # imaging of the heart: cardiology stress test / cath lab
}
ROOM_AND_BOARD = "0120"  # semi-private room and board, per day


def pcs_revenue_code(code: str) -> str | None:
    """The revenue code of an ICD-10-PCS procedure by the rule table (None: not PCS-shaped)."""
    code = code.strip().upper()
    if len(code) != 7:
        return None
    return PCS_REVENUE.get(code[:2]) or PCS_REVENUE.get(code[:1])


@dataclass(frozen=True)
class LoadResult:
    """What a chargemaster load did."""

    rows: int
    added: int
    already_loaded: bool
    newest: date | None


def _fold(name: str) -> str:
    return re.sub(r"[\s_/\-.]+", "", name.strip().lower().lstrip("\ufeff"))


def _reject(line: int, reason: str) -> FileRejected:
    return FileRejected(
        f"line {line}: {reason}; nothing was loaded.",
        details=[{"loc": ["line", line], "msg": reason}],
    )


def _header(line: int, cells: list[str]) -> dict[str, int]:
    folded = [_fold(c) for c in cells]
    found: dict[str, int] = {}
    for column, names in COLUMNS.items():
        for i, name in enumerate(folded):
            if name in names:
                found[column] = i
                break
    missing = [c.replace("_", " ") for c in COLUMNS if c not in found and c != "hcpcs"]
    if missing:
        raise _reject(line, f"the header names no {', '.join(missing)} column")
    return found


def _price(line: int, text: str) -> int:
    cleaned = text.replace("$", "").replace(",", "").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise _reject(line, f"price {text[:20]!r} is not an amount") from None
    if not value.is_finite() or value < 0 or value > Decimal("10000000"):
        raise _reject(line, f"price {text[:20]!r} is not between 0 and 10,000,000")
    if value != value.quantize(Decimal("0.01")):
        raise _reject(line, f"price {text[:20]!r} has more than two decimals")
    return int(value * 100)


def _date(line: int, text: str) -> date:
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"):
        try:
            return datetime.strptime(text.strip(), fmt).date()  # noqa: DTZ007 - a date
        except ValueError:
            continue
    raise _reject(line, f"effective date {text[:20]!r} is not a date YYYY-MM-DD")


def parse(path: Path) -> list[dict[str, object]]:
    """Every row of a chargemaster CSV, checked; FileRejected with the line on the first fault."""
    rows: list[dict[str, object]] = []
    seen: dict[tuple[str, date], int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FileRejected("The file is not UTF-8 text; nothing was loaded.") from None
    reader = csv.reader(text.splitlines())
    header: dict[str, int] | None = None
    for fields in reader:
        number = reader.line_num
        cells = [c.strip() for c in fields]
        if not any(cells):
            continue
        if header is None:
            header = _header(number, cells)
            continue
        if len(cells) <= max(header.values()):
            raise _reject(number, f"{len(cells)} fields, the header has {max(header.values()) + 1}")
        get = {k: cells[i] for k, i in header.items()}
        charge_code = get["charge_code"]
        if not CHARGE_CODE_RE.match(charge_code):
            raise _reject(number, f"charge code {charge_code[:25]!r} is not 1-20 letters/digits")
        description = get["description"]
        if not description or len(description) > 200:
            raise _reject(number, "the description is empty or longer than 200 characters")
        revenue = get["revenue_code"]
        if not re.fullmatch(r"\d{3,4}", revenue):
            raise _reject(number, f"revenue code {revenue[:10]!r} is not a 4-digit NUBC code")
        hcpcs = get.get("hcpcs", "").upper() or None
        if hcpcs is not None and not HCPCS_RE.match(hcpcs):
            raise _reject(number, f"HCPCS/CPT {hcpcs[:10]!r} is not a 5-character code")
        effective = _date(number, get["effective"])
        key = (charge_code, effective)
        if key in seen:
            raise _reject(
                number,
                f"charge code {charge_code} effective {effective} is also on line {seen[key]}",
            )
        seen[key] = number
        rows.append(
            {
                "charge_code": charge_code,
                "description": description,
                "revenue_code": revenue.zfill(4),
                "hcpcs": hcpcs,
                "price_cents": _price(number, get["price"]),
                "effective": effective,
            }
        )
    if header is None or not rows:
        raise FileRejected("No chargemaster lines found in the file; nothing was loaded.")
    return rows


def load(session: Session, *, path: Path, progress: Progress | None = None) -> LoadResult:
    """Load a chargemaster CSV (merged, effective-dated); flushes, never commits."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = session.exec(
        select(EditFileLoad).where(
            EditFileLoad.kind == KIND,
            EditFileLoad.setting == SETTING,
            EditFileLoad.sha256 == digest,
        )
    ).first()
    if loaded is not None:
        return LoadResult(loaded.rows, 0, already_loaded=True, newest=None)
    rows = parse(path)
    existing = {
        (r.charge_code, r.effective): r
        for r in session.exec(
            select(ChargeItem).where(
                col(ChargeItem.charge_code).in_({str(r["charge_code"]) for r in rows})
            )
        ).all()
    }
    added = 0
    for n, row in enumerate(rows, start=1):
        old = existing.get((str(row["charge_code"]), row["effective"]))  # type: ignore[arg-type]
        if old is None:
            session.add(ChargeItem(**row))  # type: ignore[arg-type]
            added += 1
        else:  # the same line corrected: the newer file's figures
            for field_name, value in row.items():
                setattr(old, field_name, value)
            session.add(old)
        if progress and n % 500 == 0:
            progress(n, len(rows))
    newest = max(r["effective"] for r in rows)  # type: ignore[type-var]
    session.add(
        EditFileLoad(
            kind=KIND,
            setting=SETTING,
            sha256=digest,
            file_name=path.name[:200],
            quarter=str(newest),
            rows=len(rows),
        )
    )
    session.flush()
    if progress:
        progress(len(rows), len(rows))
    return LoadResult(len(rows), added, already_loaded=False, newest=newest)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Charge:
    """What the chargemaster says of one code on a date of service."""

    charge_code: str
    description: str
    revenue_code: str
    hcpcs: str | None
    price_cents: int


def _newest(
    rows: Iterable[ChargeItem], key: Callable[[ChargeItem], str | None]
) -> dict[str, Charge]:
    best: dict[str, ChargeItem] = {}
    for row in rows:
        k = key(row)
        if k is None:
            continue
        if k not in best or (row.effective, row.id or 0) > (best[k].effective, best[k].id or 0):
            best[k] = row
    return {
        k: Charge(r.charge_code, r.description, r.revenue_code, r.hcpcs, r.price_cents)
        for k, r in best.items()
    }


def by_hcpcs(session: Session, *, codes: Iterable[str], on: date) -> dict[str, Charge]:
    """The charge line in force on `on` for each HCPCS/CPT code that has one."""
    wanted = {c.upper() for c in codes}
    if not wanted:
        return {}
    rows = session.exec(
        select(ChargeItem).where(col(ChargeItem.hcpcs).in_(wanted), ChargeItem.effective <= on)
    ).all()
    return _newest(rows, lambda r: r.hcpcs)


def by_charge_code(session: Session, *, codes: Iterable[str], on: date) -> dict[str, Charge]:
    """The charge line in force on `on` for each charge code the coder picked."""
    wanted = {c.strip() for c in codes if c and c.strip()}
    if not wanted:
        return {}
    rows = session.exec(
        select(ChargeItem).where(
            col(ChargeItem.charge_code).in_(wanted), ChargeItem.effective <= on
        )
    ).all()
    return _newest(rows, lambda r: r.charge_code)


def pickable(session: Session, *, on: date, limit: int = 2000) -> list[Charge]:
    """The chargemaster lines in force on `on` that a coder can pick for a procedure line
    (those with a HCPCS/CPT code), by charge code."""
    rows = session.exec(
        select(ChargeItem).where(col(ChargeItem.hcpcs).is_not(None), ChargeItem.effective <= on)
    ).all()
    return sorted(_newest(rows, lambda r: r.charge_code).values(), key=lambda c: c.charge_code)[
        :limit
    ]


def by_revenue(session: Session, *, revenue_codes: Iterable[str], on: date) -> dict[str, Charge]:
    """The charge line without a HCPCS code in force on `on` for each revenue code."""
    wanted = set(revenue_codes)
    if not wanted:
        return {}
    rows = session.exec(
        select(ChargeItem).where(
            col(ChargeItem.revenue_code).in_(wanted),
            col(ChargeItem.hcpcs).is_(None),
            ChargeItem.effective <= on,
        )
    ).all()
    return _newest(rows, lambda r: r.revenue_code)
