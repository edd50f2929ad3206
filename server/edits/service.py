"""Claim edits: what a payer would deny, found while the coder is still on the chart.

`check` runs every claim edit over one claim's lines for its `ClaimContext` (setting, date
of service, payer class, and, when the audited chart is in hand, the patient's age and sex)
and answers findings with edit ids (`ncci-ptp`, `mue`, `modifier`, ...). `apply_levels`
turns them into errors or warnings, or drops them, by the levels supervisors set per payer
class (`edit_level`; default: each edit's own). Sources and versions are named in every
message: the NCCI/MUE quarter a row came from, the ICD-10-CM release.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth.principal import Principal
from server.billing import kind
from server.coding.codesets import dotted, normalise
from server.coding.schemas import Codes, Problem
from server.config import get_settings
from server.edits import mce, modifiers, tabular
from server.errors import ValidationFailed
from server.models import EditLevel, Encounter, MueEdit, NcciPtpEdit, WorkItem
from server.models.base import utcnow

Level = Literal["error", "warning", "off"]
LEVELS: tuple[Level, ...] = ("error", "warning", "off")
_LEVEL_OF: dict[str, Level] = {level: level for level in LEVELS}
EVERY_PAYER = "*"

# The claim edits supervisors may set per payer class: id -> (default level, what it is).
EDITS: dict[str, tuple[Level, str]] = {
    "ncci-ptp": ("error", "NCCI procedure-to-procedure pair billed together"),
    "mue": ("error", "units over the medically unlikely edit (MUE)"),
    "modifier": ("error", "not a CPT or HCPCS Level II modifier"),
    "excludes1": ("error", "ICD-10-CM Excludes1 pair on one claim"),
    "excludes1-unrelated": ("warning", "Excludes1 pair the coder recorded as unrelated"),
    "use-additional-code": ("warning", "ICD-10-CM 'use additional code' note not followed"),
    "code-also": ("warning", "ICD-10-CM 'code also' note not followed"),
    "code-first": ("warning", "ICD-10-CM 'code first' note: underlying condition not first"),
    "code-not-valid-on-date": (
        "error",
        "code not valid in the ICD-10-CM release in force on the date of service",
    ),
    mce.NOT_RUN: ("warning", "the Medicare Code Editor has no data for the date of service"),
    **{
        mce.edit_id(name): (
            "error" if default == "error" else "warning",
            f"Medicare Code Editor: {mce.WORDS[name].split(' (')[0]}",
        )
        for name, default in mce.EDIT_DEFAULTS.items()
    },
}

# Modifiers that let an NCCI PTP pair with indicator 1 be reported (NCCI Policy Manual,
# chapter I; CMS "NCCI-associated modifiers").
NCCI_MODIFIERS = frozenset(
    "E1 E2 E3 E4 FA F1 F2 F3 F4 F5 F6 F7 F8 F9 LC LD LM LT RC RI RT TA T1 T2 T3 T4 T5 T6 T7 "
    "T8 T9 24 25 57 58 78 79 27 59 91 XE XP XS XU".split()
)
MAI_WORDS = {
    1: "per claim line",
    2: "per date of service (policy)",
    3: "per date of service (clinical)",
}


@dataclass(frozen=True)
class ClaimContext:
    """What the edits need to know about the claim (no patient data but age and sex)."""

    inpatient: bool
    setting: str | None  # NCCI/MUE table: practitioner | hospital; None: not applied
    date_of_service: date
    payer_class: str
    age: int | None = None  # at the date of service; only from an audited view of the chart
    sex: str | None = None  # "male" | "female" | other; likewise
    audited: bool = False  # age and sex were looked for in an audited view or use
    discharge_status: str | None = None  # the abstract's NUBC FL17 code, when abstracted


@dataclass(frozen=True)
class Finding:
    """A claim edit that fired: its id, where, and what to tell the coder."""

    edit: str
    loc: list[str | int]
    msg: str
    code: str | None = None
    pair: tuple[str, str] | None = None  # excludes1: the two codes (sorted, dotted)


def claim_setting(encounter_class: str, facility: str | None = None) -> str | None:
    """Which NCCI/MUE table applies to the claim billing builds for this encounter.

    By claim type (`server.billing.kind`): inpatient stays go on an 837I and PTP and MUE do
    not apply; a hospital outpatient visit goes on an outpatient 837I (type of bill 013x),
    which the hospital outpatient tables govern; everything else goes on an 837P, which the
    practitioner tables govern. The facility's setting is CHARTDESK_BILLING_FACILITY_SETTING(S).
    """
    return kind.edit_setting(get_settings(), encounter_class, facility)


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def context_for(
    session: Session,
    *,
    item: WorkItem,
    birth_date: str | date | None = None,
    sex: str | None = None,
    audited: bool = False,
) -> ClaimContext:
    """The claim context of a work item, from its encounter's metadata (kept in clear).

    Date of service: the discharge day for an inpatient stay, else the day the visit began.
    `birth_date`/`sex` come only from a record opened through the audited door; without
    them the age and sex edits are not run.
    """
    return context_of(
        session.get(Encounter, item.encounter_id), birth_date=birth_date, sex=sex, audited=audited
    )


def context_of(
    encounter: Encounter | None,
    *,
    birth_date: str | date | None = None,
    sex: str | None = None,
    audited: bool = False,
) -> ClaimContext:
    """`context_for` of an encounter row already in hand (the one-trip chart view read it)."""
    klass = encounter.encounter_class.lower() if encounter else "outpatient"
    inpatient = klass == "inpatient"
    when: datetime | None = None
    if encounter is not None:
        when = (encounter.end_at or encounter.start_at) if inpatient else encounter.start_at
    # The day in the hospital's zone: a discharge at 22:00 on 30 September is FY2026's, not
    # FY2027's, although it is 1 October in UTC (releases, quarters and ages turn on the day).
    moment = when or utcnow()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    dos = moment.astimezone(ZoneInfo(get_settings().audit_timezone)).date()
    birth = birth_date if isinstance(birth_date, date) else None
    if isinstance(birth_date, str):
        try:
            birth = date.fromisoformat(birth_date[:10])
        except ValueError:
            birth = None  # a partial or odd birth date: the age edits do not run
    return ClaimContext(
        inpatient=inpatient,
        setting=claim_setting(klass, encounter.facility if encounter else None),
        date_of_service=dos,
        payer_class=((encounter.payer_class if encounter else None) or "unknown").lower(),
        age=_age(birth, dos),
        sex=sex,
        audited=audited,
    )


# ---------------------------------------------------------------- NCCI PTP and MUE


def _billed_lines(codes: Codes) -> list[tuple[int, str, set[str], int]]:
    """(line index, code, modifiers, units) of the CPT/HCPCS lines."""
    return [
        (n, normalise(p.code), {m.strip().upper() for m in p.modifiers}, p.units)
        for n, p in enumerate(codes.procedures)
        if p.system in ("CPT", "HCPCS") and p.code.strip()
    ]


def _ptp(
    session: Session, lines: list[tuple[int, str, set[str], int]], ctx: ClaimContext
) -> list[Finding]:
    codes = sorted({code for _, code, _, _ in lines})
    if ctx.setting is None or len(codes) < 2:
        return []
    dos = ctx.date_of_service
    edits = session.exec(  # one query for every pair of the claim
        select(NcciPtpEdit).where(
            NcciPtpEdit.setting == ctx.setting,
            col(NcciPtpEdit.column1).in_(codes),
            col(NcciPtpEdit.column2).in_(codes),
            NcciPtpEdit.modifier != "9",
            col(NcciPtpEdit.effective) <= dos,
            or_(col(NcciPtpEdit.deleted).is_(None), col(NcciPtpEdit.deleted) > dos),
        )
    ).all()
    by_code: dict[str, list[tuple[int, str, set[str], int]]] = defaultdict(list)
    for line in lines:
        by_code[line[1]].append(line)
    found: list[Finding] = []
    seen: set[tuple[int, int]] = set()  # two rows of one pair in force: the newest speaks
    newest_first = sorted(edits, key=lambda e: (e.column1, e.column2, -e.effective.toordinal()))
    for edit in newest_first:
        for n1, c1, mods1, _ in by_code[edit.column1]:
            for n2, c2, mods2, _ in by_code[edit.column2]:
                if n2 == n1 or (n1, n2) in seen:
                    continue
                seen.add((n1, n2))
                source = (
                    f"NCCI PTP {edit.setting} edit, {edit.quarter} file, in force since "
                    f"{edit.effective.isoformat()}"
                )
                why = f" ({edit.rationale})" if edit.rationale else ""
                if edit.modifier == "0":
                    msg = (
                        f"{c2} (line {n2 + 1}) is not paid with {c1} (line {n1 + 1}) on the "
                        f"same day{why}: modifier indicator 0, no modifier allows the pair; "
                        f"remove {c2}. {source}."
                    )
                elif mods1 & NCCI_MODIFIERS or mods2 & NCCI_MODIFIERS:
                    continue
                else:
                    msg = (
                        f"{c2} (line {n2 + 1}) is not paid with {c1} (line {n1 + 1}) on the "
                        f"same day{why}: modifier indicator 1, report both only when the "
                        "services are distinct and documented, with an NCCI-associated "
                        f"modifier (59, XE, XP, XS, XU, ...) on either line. {source}."
                    )
                found.append(Finding("ncci-ptp", ["procedures", n2, "code"], msg, c2))
    return found


def _mue(
    session: Session, lines: list[tuple[int, str, set[str], int]], ctx: ClaimContext
) -> list[Finding]:
    codes = sorted({code for _, code, _, _ in lines})
    if ctx.setting is None or not codes:
        return []
    # The newest table in force on the date of service replaces the older ones whole: a
    # code it leaves out has no MUE from then on.
    in_force = (
        select(func.max(MueEdit.effective))
        .where(MueEdit.setting == ctx.setting, col(MueEdit.effective) <= ctx.date_of_service)
        .scalar_subquery()
    )
    rows = session.exec(
        select(MueEdit).where(
            MueEdit.setting == ctx.setting,
            col(MueEdit.code).in_(codes),
            col(MueEdit.effective) == in_force,
        )
    ).all()
    current = {row.code: row for row in rows}
    found: list[Finding] = []
    per_day: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for n, code, _, units in lines:
        per_day[code].append((n, units))
    for code, mue in sorted(current.items()):
        source = (
            f"MUE {mue.setting} table, {mue.quarter} (from {mue.effective.isoformat()}), "
            f"adjudication {mue.adjudication} {MAI_WORDS.get(mue.adjudication, '')}"
        )
        why = f"; {mue.rationale}" if mue.rationale else ""
        if mue.adjudication == 1:
            for n, units in per_day[code]:
                if units > mue.value:
                    found.append(
                        Finding(
                            "mue",
                            ["procedures", n, "units"],
                            f"{code} × {units} units on line {n + 1} is over the most units "
                            f"payable on one line ({mue.value}{why}). {source}.",
                            code,
                        )
                    )
        else:
            total = sum(u for _, u in per_day[code])
            if total > mue.value:
                last = per_day[code][-1][0]
                found.append(
                    Finding(
                        "mue",
                        ["procedures", last, "units"],
                        f"{code} × {total} units on the date of service "
                        f"{ctx.date_of_service.isoformat()} is over the most units payable "
                        f"for one patient on one day ({mue.value}{why}). {source}.",
                        code,
                    )
                )
    return found


def _modifiers(codes: Codes) -> list[Finding]:
    found: list[Finding] = []
    for n, line in enumerate(codes.procedures):
        for m, raw in enumerate(line.modifiers):
            modifier = raw.strip().upper()
            if line.system == "PCS":
                msg = f"ICD-10-PCS codes take no modifiers: remove '{raw[:4]}' from line {n + 1}."
            elif modifiers.describe(modifier) is None:
                msg = (
                    f"'{raw[:4]}' on line {n + 1} is not a CPT or HCPCS Level II modifier: "
                    f"a payer rejects the line. {modifiers.SOURCE}."
                )
            else:
                continue
            found.append(Finding("modifier", ["procedures", n, "modifiers", m], msg, line.code))
    return found


def unrelated_pairs(codes: Codes) -> set[tuple[str, str]]:
    """The Excludes1 pairs the coder recorded as unrelated, as sorted dotted codes."""
    pairs: set[tuple[str, str]] = set()
    for a, b in codes.unrelated:
        x, y = sorted((dotted(a)[:10], dotted(b)[:10]))
        pairs.add((x, y))
    return pairs


def _tabular(codes: Codes) -> list[Finding]:
    dx = [d.code for d in codes.diagnoses if d.code.strip()]
    return [
        Finding(f.edit, ["diagnoses", f.line, "code"], f.msg, None, f.pair)
        for f in tabular.check(dx, unrelated=unrelated_pairs(codes))
    ]


def _mce(codes: Codes, ctx: ClaimContext) -> list[Finding]:
    found = mce.check(
        dx=[d.code for d in codes.diagnoses if d.code.strip()],
        pcs=[(n, normalise(p.code)) for n, p in enumerate(codes.procedures) if p.system == "PCS"],
        inpatient=ctx.inpatient,
        date_of_service=ctx.date_of_service,
        age=ctx.age,
        sex=ctx.sex,
    )
    return [Finding(f.edit, [f.kind, f.line, "code"], f.msg) for f in found]


def check(session: Session, *, codes: Codes, context: ClaimContext) -> list[Finding]:
    """Every claim edit over the claim's lines (the caller applies the levels)."""
    lines = _billed_lines(codes)
    return [
        *_tabular(codes),
        *_mce(codes, context),
        *_modifiers(codes),
        *_ptp(session, lines, context),
        *_mue(session, lines, context),
    ]


# ---------------------------------------------------------------- levels per payer class


def levels(session: Session, *, payer_class: str) -> dict[str, Level]:
    """The level of every edit for a payer class: its own setting, else every payer's, else
    the edit's default."""
    rows = session.exec(
        select(EditLevel).where(col(EditLevel.payer_class).in_([payer_class, EVERY_PAYER]))
    ).all()
    chosen: dict[str, Level] = {edit: default for edit, (default, _) in EDITS.items()}
    for row in sorted(rows, key=lambda r: r.payer_class != EVERY_PAYER):
        if row.edit in chosen:
            chosen[row.edit] = _LEVEL_OF.get(row.level, chosen[row.edit])
    return chosen


def apply_levels(
    session: Session, *, findings: list[Finding], payer_class: str
) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of the findings by the payer class's levels; `off` drops them."""
    if not findings:
        return [], []
    chosen = levels(session, payer_class=payer_class)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for f in findings:
        level = chosen.get(f.edit, "warning")  # an edit not registered only informs
        if level == "off":
            continue
        pair = "|".join(f.pair) if f.pair else None
        (errors if level == "error" else warnings).append(
            Problem(loc=f.loc, code=f.edit, msg=f.msg, pair=pair)
        )
    return errors, warnings


def list_levels(session: Session) -> list[EditLevel]:
    """Every level a supervisor set, by payer class and edit."""
    return list(
        session.exec(
            select(EditLevel).order_by(col(EditLevel.payer_class), col(EditLevel.edit))
        ).all()
    )


def set_level(
    session: Session, *, actor: Principal, payer_class: str, edit: str, level: str
) -> EditLevel | None:
    """Set how strict `edit` is for `payer_class` ("*": every payer); `default` removes it."""
    payer = payer_class.strip().lower()
    if edit not in EDITS:
        raise ValidationFailed(
            f"Unknown edit {edit[:60]!r}.",
            details=[{"loc": ["edit"], "msg": ", ".join(sorted(EDITS))}],
        )
    if level not in (*LEVELS, "default"):
        raise ValidationFailed(
            "The level is error, warning, off or default.",
            details=[{"loc": ["level"], "msg": "error|warning|off|default"}],
        )
    if not payer or len(payer) > 100:
        raise ValidationFailed(
            "Name the payer class (or * for every payer).",
            details=[{"loc": ["payer_class"], "msg": "1-100 characters"}],
        )
    row = session.get(EditLevel, (payer, edit))
    if level == "default":
        if row is not None:
            session.delete(row)
        row = None
    elif row is None:
        row = EditLevel(payer_class=payer, edit=edit, level=level, updated_by=actor.name)
        session.add(row)
    else:
        row.level, row.updated_by, row.updated_at = level, actor.name, utcnow()
        session.add(row)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.queue_admin,
        purpose=None,
        detail=f"edit-level payer={payer[:40]} edit={edit} level={level}",
    )
    return row
