"""Code entry, validation, submit and QA review.

Code lines are clinical patient data: they are stored sealed under the encounter's data
key (one value per item) and opened only where shown or used, after an audited view or
use; QA reasons are sealed too. Validation answers errors (they block
Submit) and warnings (they do not), each pointing at a line and field, in words a coder
understands. Submit sends a sample of items to QA review (the queue's sampling rules, in
order: `server.qa.sampling`), the rest straight to billing. Every step goes through
`queue_service.transition` (work item events) and the audit log.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from server.audit import service as audit_service
from server.auth import service as auth_service
from server.auth.principal import Principal
from server.billing import cdm
from server.coding import abstract as abstract_service
from server.coding import codesets, releases
from server.coding.codesets import normalise
from server.coding.schemas import Codes, DiagnosisLine, DrgView, Problem, ProcedureLine
from server.edits import drg, tabular
from server.edits import service as edits_service
from server.errors import Forbidden, NotFound, ValidationFailed
from server.models import Encounter, ItemCodes, Queue, Status, User, UserRole, WorkItem
from server.models.base import utcnow
from server.qa import sampling
from server.qa import scores as qa_scores
from server.queue import service as queue_service
from server.records import service as records_service
from server.records.schemas import RecordView
from server.records.service import ItemKey

POA_VALUES = ("Y", "N", "U", "W", "1")
POA_WORDS = (
    "Y (yes), N (no), U (documentation insufficient), W (clinically undetermined) or 1 (exempt)"
)


@dataclass
class Validation:
    """Errors block Submit; warnings do not."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # Checked without the patient's age and sex (no audited view or use in hand): the age
    # and sex edits did not run.
    without_demographics: bool = False
    # The working MS-DRG of an inpatient stay (None: outpatient, or no diagnosis yet).
    drg: DrgView | None = None

    def error(self, loc: list[str | int], msg: str, code: str | None = None) -> None:
        """Add an error."""
        self.errors.append(Problem(loc=loc, code=code, msg=msg))

    def warn(self, loc: list[str | int], msg: str, code: str | None = None) -> None:
        """Add a warning."""
        self.warnings.append(Problem(loc=loc, code=code, msg=msg))

    def details(self) -> list[dict[str, Any]]:
        """The errors as error details for a 422."""
        return [p.model_dump() for p in self.errors]


def is_inpatient(session: Session, item: WorkItem) -> bool:
    """Whether the item's encounter is an inpatient stay (POA required, 837I claim)."""
    encounter = session.get(Encounter, item.encounter_id)
    return encounter is not None and encounter.encounter_class.lower() == "inpatient"


# ---------------------------------------------------------------- validation


def _seventh_character(code: str) -> str | None:
    """What to tell a coder whose code lacks the 7th character (or the placeholder X) its
    category requires; None if that is not what is wrong."""
    seventh = tabular.seventh_characters(code[:3])
    if not seventh or len(code) >= 8:
        return None
    index = codesets.icd10cm()
    entry = index.get(code)
    if entry is None and len(code) >= 4:  # 7th character typed without the placeholder X
        fixed = index.get(code[:-1].ljust(6, "X") + code[-1])
        if fixed is not None and fixed.billable:
            return (
                f"{codesets.dotted(code)} needs the placeholder X before its 7th character: "
                f"{fixed.display} ({fixed.description}). {tabular.SOURCE}."
            )
        return None
    if entry is None or entry.billable or len(code) >= 7:
        return None
    example = next(
        (e for c in seventh if (e := index.get(code.ljust(6, "X") + c)) is not None), None
    )
    if example is None:
        return None  # a header with more specific codes under it
    options = "; ".join(f"{c} {' '.join(m.split())}" for c, m in list(seventh.items())[:8])
    more = " ..." if len(seventh) > 8 else ""
    return (
        f"{entry.display} needs a 7th character (e.g. {example.display}): {options}{more}. "
        f"{tabular.SOURCE}."
    )


def _check_diagnosis(
    v: Validation, n: int, line: DiagnosisLine, inpatient: bool, dos: date
) -> None:
    loc: list[str | int] = ["diagnoses", n]
    raw = line.code.strip()
    code = normalise(raw)
    if not code:
        v.error([*loc, "code"], f"Diagnosis {n + 1} has no code.", "code-unknown")
        return
    entry = codesets.icd10cm().get(code)
    # Absent from (or a header in) the shipped tabular list: another release may have it,
    # billable on this date of service (older) or only in releases not in force (gone).
    dated = releases.check(code, dos) if entry is None or not entry.billable else None
    older = dated is not None and dated.valid is True
    gone = dated is not None and dated.valid is False and dated.ever_valid
    seventh = (
        _seventh_character(code)
        if not older and not gone and (entry is None or not entry.billable)
        else None
    )
    if dated is not None and older:
        assert dated.release is not None  # noqa: S101 - valid means a release is in force
        v.warn(
            [*loc, "code"],
            f"{raw} is not a billable code in the shipped tabular list "
            f"({codesets.ICD10CM_RELEASE}) but is valid for a date of service of "
            f"{dos.isoformat()} in {dated.release.name}; its tabular notes were not checked. "
            f"{releases.source()}.",
            "code-older-release",
        )
    elif dated is not None and gone:
        v.error([*loc, "code"], f"{dated.why_not()} {releases.source()}.", "code-not-valid-on-date")
    elif seventh:
        v.error([*loc, "code"], seventh, "seventh-character")
    elif entry is None:
        v.error(
            [*loc, "code"],
            f"{raw} is not an ICD-10-CM code ({codesets.ICD10CM_RELEASE}): check the code, "
            "or type words and pick one from the suggestions.",
            "code-unknown",
        )
    elif not entry.billable:
        example = next((e.display for e in codesets.icd10cm().prefix(code, 50) if e.billable), None)
        hint = f" such as {example}" if example else ""
        v.error(
            [*loc, "code"],
            f"{entry.display} ({entry.description}) is a category header, not a billable code: "
            f"pick a more specific code{hint}.",
            "code-not-billable",
        )
    elif n == 0 and entry.manifestation:
        v.error(
            [*loc, "code"],
            f"{entry.display} ({entry.description}) is a manifestation code and cannot be the "
            "principal diagnosis: code the underlying condition first.",
            "manifestation-as-principal",
        )
    poa = (line.poa or "").strip().upper()
    if poa and poa not in POA_VALUES:
        v.error([*loc, "poa"], f"POA '{line.poa}' is not valid: use {POA_WORDS}.", "poa")
    elif inpatient and not poa:
        v.error(
            [*loc, "poa"],
            f"Diagnosis {n + 1} ({raw}) needs a present-on-admission indicator on an inpatient "
            f"stay: {POA_WORDS}.",
            "poa",
        )
    elif poa and not inpatient:
        v.warn(
            [*loc, "poa"],
            "POA indicators are only reported on inpatient claims; ignored.",
            "poa",
        )


def _check_procedure(
    v: Validation,
    n: int,
    line: ProcedureLine,
    *,
    dx_count: int,
    inpatient: bool,
    loaded: dict[str, tuple[int, set[str]]],
    dos: date,
    hcpcs_dates: dict[str, codesets.HcpcsDates] | None = None,
) -> None:
    loc: list[str | int] = ["procedures", n]
    raw = line.code.strip()
    code = normalise(raw)
    system = line.system
    names = {"CPT": "CPT", "HCPCS": "HCPCS Level II", "PCS": "ICD-10-PCS"}
    shapes = {
        "CPT": "5 digits, or 4 digits and F, T or U (e.g. 99213, 0001F)",
        "HCPCS": "a letter A-V and 4 digits (e.g. J1100)",
        "PCS": "7 characters from 0-9 and A-Z without I and O (e.g. 0DTJ4ZZ)",
    }
    dated = releases.check_pcs(code, dos) if system == "PCS" else None
    hcpcs_dated = hcpcs_dates.get(code) if system == "HCPCS" and hcpcs_dates is not None else None
    if not codesets.format_ok(system, code):
        v.error(
            [*loc, "code"],
            f"{raw or '(empty)'} is not a valid {names[system]} code: expected {shapes[system]}.",
            "code-format",
        )
    elif dated is not None and dated.valid is False:
        # Never valid in any release carried: not a code at all, rather than one of another date.
        v.error(
            [*loc, "code"],
            f"{dated.why_not()} {releases.source(releases.PCS)}.",
            "code-not-valid-on-date" if dated.ever_valid else "code-unknown",
        )
    elif hcpcs_dated is not None and not hcpcs_dated.valid_on(dos):
        v.error([*loc, "code"], hcpcs_dated.why_not(dos), "code-not-valid-on-date")
    else:
        count, present = loaded.get(system, (0, set()))
        if count and code not in present:
            v.error(
                [*loc, "code"],
                f"{raw} is not in the {names[system]} code set loaded on this server "
                f"({count} codes): check the code.",
                "code-unknown",
            )
    if system == "PCS" and not inpatient:
        v.warn(
            [*loc, "system"],
            "ICD-10-PCS codes are reported on inpatient hospital claims.",
            "pcs-outpatient",
        )
    if system != "PCS" and not line.dx_pointers:
        v.error(
            [*loc, "dx_pointers"],
            f"Procedure {n + 1} ({raw}) must point at the diagnosis it treats (e.g. 1).",
            "dx-pointer",
        )
    for p, pointer in enumerate(line.dx_pointers):
        if pointer < 1 or pointer > dx_count:
            v.error(
                [*loc, "dx_pointers", p],
                f"Procedure {n + 1} points at diagnosis {pointer}, but there "
                f"{'is' if dx_count == 1 else 'are'} {dx_count} diagnosis line"
                f"{'' if dx_count == 1 else 's'}.",
                "dx-pointer",
            )
    if len(set(line.dx_pointers)) != len(line.dx_pointers):
        v.error(
            [*loc, "dx_pointers"],
            f"Procedure {n + 1} lists the same diagnosis twice.",
            "dx-pointer",
        )


def claim_context(
    session: Session,
    *,
    item: WorkItem,
    record: RecordView | None = None,
    key: ItemKey | None = None,
    abstract: abstract_service.Abstract | None = None,
) -> edits_service.ClaimContext:
    """The claim context the checks run in: from the encounter's metadata, and the patient's
    age and sex when an audited view (`record`) or audited use (`key`) is in hand; without
    either, the age and sex edits are not run. An inpatient stay's discharge status comes
    from its `abstract` (opened with `key` when the caller has not opened it already)."""
    birth_date = sex = None
    if record is not None:
        birth_date, sex = record.patient.birth_date, record.patient.sex
    elif key is not None:
        found = records_service.demographics(session, key=key)
        birth_date, sex = found.birth_date, found.sex
    context = edits_service.context_for(
        session,
        item=item,
        birth_date=birth_date,
        sex=sex,
        audited=record is not None or key is not None,
    )
    if context.inpatient and abstract is None and key is not None:
        abstract = abstract_service.get_abstract(session, key=key)
    return _with_discharge(context, abstract)


def record_context(
    encounter: Encounter, *, record: RecordView, abstract: abstract_service.Abstract
) -> edits_service.ClaimContext:
    """`claim_context` of a chart opened in one trip: its encounter row, record and abstract
    are all in hand, so nothing is read."""
    context = edits_service.context_of(
        encounter, birth_date=record.patient.birth_date, sex=record.patient.sex, audited=True
    )
    return _with_discharge(context, abstract)


def _with_discharge(
    context: edits_service.ClaimContext, abstract: abstract_service.Abstract | None
) -> edits_service.ClaimContext:
    """An inpatient stay's context with its abstract's discharge status (the grouper's)."""
    if context.inpatient and abstract is not None:
        return dataclasses.replace(context, discharge_status=abstract.discharge_status)
    return context


def check_context(
    session: Session, *, actor: Principal, item: WorkItem
) -> edits_service.ClaimContext:
    """The as-you-type check's claim context: an inpatient stay's with its saved abstract and
    the patient's age and sex (the grouper's inputs), opened under a code-check audit row."""
    if not is_inpatient(session, item):
        return claim_context(session, item=item)
    assert item.id is not None  # noqa: S101 - a leased item
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=item.id,
        action=audit_service.Action.code_check,
        purpose="TREAT",
    )
    return claim_context(session, item=item, key=key)


def with_charge_codes(session: Session, *, codes: Codes, on: date) -> Codes:
    """The lines with the HCPCS/CPT code of the chargemaster line picked filled in where the
    coder left the code blank (CPT for 5 digits or 4 digits and a letter, else HCPCS)."""
    found = cdm.by_charge_code(
        session, codes=[p.charge_code or "" for p in codes.procedures], on=on
    )
    lines = []
    for p in codes.procedures:
        charge = found.get((p.charge_code or "").strip())
        if charge is not None and charge.hcpcs and not p.code.strip():
            system = "HCPCS" if charge.hcpcs[0].isalpha() else "CPT"
            p = p.model_copy(update={"code": charge.hcpcs, "system": system})
        lines.append(p)
    return codes.model_copy(update={"procedures": lines})


@dataclass(frozen=True)
class ChargeFill:
    """What a picked charge code sets on a procedure line (shown as soon as it is picked)."""

    line: int  # the procedure line's index (0-based, as in error locations)
    charge_code: str
    description: str
    system: str
    code: str  # the chargemaster's HCPCS/CPT code
    price_cents: int  # one unit
    charge: float  # the line's charge: price times units, as the claim bills it


def charge_fills(session: Session, *, codes: Codes, on: date) -> list[ChargeFill]:
    """For each line whose charge code is in the chargemaster in force on `on` (with a
    HCPCS/CPT code): the code and charge it sets, so the panel can show them at the line."""
    found = cdm.by_charge_code(
        session, codes=[p.charge_code or "" for p in codes.procedures], on=on
    )
    fills = []
    for n, p in enumerate(codes.procedures):
        charge = found.get((p.charge_code or "").strip())
        if charge is None or not charge.hcpcs:
            continue
        fills.append(
            ChargeFill(
                line=n,
                charge_code=charge.charge_code,
                description=charge.description,
                system="HCPCS" if charge.hcpcs[0].isalpha() else "CPT",
                code=charge.hcpcs,
                price_cents=charge.price_cents,
                charge=charge.price_cents * p.units / 100,
            )
        )
    return fills


def _check_charge_codes(session: Session, v: Validation, codes: Codes, on: date) -> None:
    """A picked charge code must be in the chargemaster in force and match the line's code."""
    picked = [p.charge_code for p in codes.procedures if p.charge_code]
    if not picked:
        return
    found = cdm.by_charge_code(session, codes=picked, on=on)
    for n, p in enumerate(codes.procedures):
        if not p.charge_code:
            continue
        charge = found.get(p.charge_code.strip())
        loc: list[str | int] = ["procedures", n, "charge_code"]
        if charge is None:
            v.error(
                loc,
                f"Charge code {p.charge_code} is not in the chargemaster in force on "
                f"{on.isoformat()}.",
                "charge-code",
            )
        elif not charge.hcpcs:
            v.error(
                loc,
                f"Charge code {p.charge_code} ({charge.description}) has no HCPCS/CPT code: "
                "it cannot be a procedure line.",
                "charge-code",
            )
        elif normalise(p.code) != charge.hcpcs.upper():
            v.error(
                loc,
                f"Charge code {p.charge_code} bills {charge.hcpcs} ({charge.description}), "
                f"not {p.code}: clear the code or pick the matching charge.",
                "charge-code",
            )


def validate(session: Session, *, codes: Codes, context: edits_service.ClaimContext) -> Validation:
    """Check every line against the code sets, the claim rules and the claim edits."""
    v = Validation(without_demographics=not context.audited)
    inpatient = context.inpatient
    if not codes.diagnoses:
        v.error(["diagnoses"], "Add at least one diagnosis.", "no-diagnosis")
    for n, dx in enumerate(codes.diagnoses):
        _check_diagnosis(v, n, dx, inpatient, context.date_of_service)
    seen = Counter(normalise(d.code) for d in codes.diagnoses if d.code.strip())
    for n, dx in enumerate(codes.diagnoses):
        if seen[normalise(dx.code)] > 1 and normalise(dx.code) in [
            normalise(d.code) for d in codes.diagnoses[:n]
        ]:
            v.error(["diagnoses", n, "code"], f"{dx.code} is listed twice.", "duplicate")
    loaded: dict[str, tuple[int, set[str]]] = {}
    for system in codesets.LOADABLE:
        wanted = [p.code for p in codes.procedures if p.system == system]
        if wanted:
            count = codesets.loaded_count(session, system=system)
            present = (
                codesets.loaded_codes(session, system=system, codes=wanted) if count else set()
            )
            loaded[system] = (count, present)
    hcpcs_dates = codesets.hcpcs_dates(
        session, codes=[p.code for p in codes.procedures if p.system == "HCPCS"]
    )
    for n, px in enumerate(codes.procedures):
        _check_procedure(
            v,
            n,
            px,
            dx_count=len(codes.diagnoses),
            inpatient=inpatient,
            loaded=loaded,
            dos=context.date_of_service,
            hcpcs_dates=hcpcs_dates,
        )
    keys = [
        (p.system, normalise(p.code), tuple(m.upper() for m in p.modifiers), tuple(p.dx_pointers))
        for p in codes.procedures
    ]
    for n, key in enumerate(keys):
        if key in keys[:n]:
            v.error(
                ["procedures", n],
                f"Procedure {n + 1} ({codes.procedures[n].code}) repeats an earlier line: "
                "raise the units on that line instead.",
                "duplicate",
            )
    _check_charge_codes(session, v, codes, context.date_of_service)
    findings = edits_service.check(session, codes=codes, context=context)
    errors, warnings = edits_service.apply_levels(
        session, findings=findings, payer_class=context.payer_class
    )
    v.errors.extend(errors)
    v.warnings.extend(warnings)
    v.drg = working_drg(codes, context)
    if v.drg is not None and v.drg.problem:
        v.warn(["diagnoses", 0, "code"], v.drg.problem, drg.PROBLEM)
    return v


def working_drg(codes: Codes, context: edits_service.ClaimContext) -> DrgView | None:
    """The working MS-DRG of the codes in this claim context (None for outpatient)."""
    return drg.group(
        codes,
        inpatient=context.inpatient,
        discharge=context.date_of_service,
        age=context.age,
        sex=context.sex,
        discharge_status=int(context.discharge_status or "01"),
    )


# ---------------------------------------------------------------- storing lines


def get_codes(session: Session, *, key: ItemKey) -> Codes:
    """The item's saved lines (empty if none), opened with the key of an audited view or use."""
    row = session.get(ItemCodes, key.work_item_id)
    return open_codes(key=key, sealed=row.sealed_lines if row is not None else None)


def open_codes(*, key: ItemKey, sealed: bytes | None) -> Codes:
    """The item's sealed lines (`item_codes.sealed_lines`, None: no row), opened with the key
    of an audited view or use; for a caller that read the row itself (the chart's one read)."""
    if sealed is None:
        return Codes()
    return Codes.model_validate(
        key.open(
            table=ItemCodes.__tablename__, row_id=key.work_item_id, field="lines", sealed=sealed
        )
    )


def _stored_form(codes: Codes) -> Codes:
    """The lines as stored: known ICD-10-CM codes dotted, others trimmed, upper case."""
    dx = []
    for line in codes.diagnoses:
        code = normalise(line.code)
        dx.append(
            DiagnosisLine(
                code=codesets.dotted(code)
                if codesets.icd10cm().get(code)
                else line.code.strip()[:10],
                poa=(line.poa or "").strip().upper()[:1] or None,
                evidence=line.evidence,
            )
        )
    px = [
        ProcedureLine(
            code=normalise(line.code)[:10],
            system=line.system,
            modifiers=[m.strip().upper()[:2] for m in line.modifiers if m.strip()],
            units=line.units,
            dx_pointers=line.dx_pointers,
            charge=round(line.charge * 100) / 100,
            evidence=line.evidence,
            charge_code=(line.charge_code or "").strip() or None,
        )
        for line in codes.procedures
    ]
    unrelated = sorted(edits_service.unrelated_pairs(codes))
    return Codes(diagnoses=dx, procedures=px, unrelated=unrelated)


def store_codes(
    session: Session, *, work_item_id: int, codes: Codes, key: ItemKey | None = None
) -> None:
    """Seal the item's lines under its encounter's data key (replacing earlier ones); with
    the `key` of an audited use in hand, without unwrapping the data key again."""
    table, value = ItemCodes.__tablename__, _stored_form(codes).model_dump(mode="json")
    if key is not None:
        sealed = key.seal(table=table, row_id=work_item_id, field="lines", value=value)
    else:
        sealed = records_service.seal_for_item(
            session,
            work_item_id=work_item_id,
            table=table,
            row_id=work_item_id,
            field="lines",
            value=value,
        )
    row = session.get(ItemCodes, work_item_id)
    if row is None:
        row = ItemCodes(work_item_id=work_item_id, sealed_lines=sealed)
    else:
        row.sealed_lines, row.updated_at = sealed, utcnow()
    session.add(row)
    session.flush()


def save_codes(
    session: Session, *, actor: Principal, work_item_id: int, codes: Codes
) -> Validation:
    """Save the draft (even with errors) of an item leased to the caller; answer the checks."""
    item = queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
    # The save is an audited use of the item (its audit row is written first): its key
    # opens the patient's age and sex for the claim edits, and nothing else.
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=work_item_id,
        action=audit_service.Action.code_save,
        purpose="TREAT",
        detail=f"dx={len(codes.diagnoses)} px={len(codes.procedures)}"
        + (f" unrelated={len(codes.unrelated)}" if codes.unrelated else ""),
    )
    context = claim_context(session, item=item, key=key)
    codes = with_charge_codes(session, codes=codes, on=context.date_of_service)
    result = validate(session, codes=codes, context=context)
    store_codes(session, work_item_id=work_item_id, codes=codes, key=key)
    if item.baseline_drg is None and result.drg is not None and result.drg.drg:
        item.baseline_drg, item.baseline_drg_version = result.drg.drg, result.drg.version
        session.add(item)
    return result


def _sample(
    session: Session,
    *,
    item: WorkItem,
    coder_id: int,
    codes: Codes,
    context: edits_service.ClaimContext,
    result: Validation,
) -> sampling.Decision:
    """The queue's sampling rules on the chart as submitted (its codes already opened)."""
    facts = sampling.Facts(
        drg=result.drg.drg if result.drg else None,
        mdc=result.drg.mdc if result.drg else None,
        diagnoses=tuple(d.code for d in codes.diagnoses),
        procedures=tuple(p.code for p in codes.procedures),
        payer_class=context.payer_class,
        charge=sum(p.charge for p in codes.procedures if p.system != "PCS"),
    )
    return sampling.decide(session, queue_id=item.queue_id, coder_id=coder_id, facts=facts)


def submit(session: Session, *, actor: Principal, work_item_id: int) -> tuple[WorkItem, Validation]:
    """Submit the saved codes: 422 with the errors, else on to QA review or billing.

    The codes are opened under the submit's own audit row (written first, with where the
    item goes); when they have errors the request rolls back and the failed attempt is
    audited on its own instead.
    """
    item = queue_service.leased_item(session, actor=actor, work_item_id=work_item_id)
    assert actor.user_id is not None  # noqa: S101 - leased_item refuses non-people
    # Where the chart goes is decided after its codes are checked (the sampling rules look
    # at them): the item's history says where, and which rule sent it to QA.
    key = records_service.open_for_use(
        session,
        actor=actor,
        work_item_id=work_item_id,
        action=audit_service.Action.submit,
        purpose="TREAT",
        detail="submit",
    )
    codes = get_codes(session, key=key)
    abstract = abstract_service.get_abstract(session, key=key)
    context = claim_context(session, item=item, key=key, abstract=abstract)
    result = validate(session, codes=codes, context=context)
    if context.inpatient and context.discharge_status is None:
        result.error(
            ["abstract", "discharge_status"],
            "An inpatient stay needs its discharge status (NUBC FL17) in the abstract.",
            "abstract-required",
        )
    if (
        context.inpatient
        and abstract.birth_weight_grams is None
        and abstract_service.birth_weight_needed(
            abstract, age=context.age, drg=result.drg.drg if result.drg else None
        )
    ):
        result.error(
            ["abstract", "birth_weight_grams"],
            "A newborn's stay needs the birth weight in grams (NUBC value code 54) "
            "in the abstract.",
            "abstract-required",
        )
    if result.errors:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.submit,
            outcome=audit_service.Outcome.failed,
            work_item_id=work_item_id,
            purpose="TREAT",
            detail=f"errors={len(result.errors)}",
        )
        raise ValidationFailed(
            "The codes have errors; fix them before submitting.", details=result.details()
        )
    decision = _sample(
        session, item=item, coder_id=actor.user_id, codes=codes, context=context, result=result
    )
    to_status = Status.qa_review if decision.sampled else Status.ready_for_billing
    item.coded_by_id = actor.user_id
    item.coded_at = utcnow()
    # The final DRG (None for outpatient, or a stay that does not group).
    item.final_drg = result.drg.drg if result.drg else None
    item.final_drg_version = result.drg.version if result.drg and result.drg.drg else None
    # How many secondaries act as CC / MCC (counts only, for the capture rate report).
    acting = [c for c in result.drg.cc_mcc if not c.excluded] if result.drg else []
    grouped = bool(result.drg and result.drg.drg)
    item.final_cc_count = sum(c.level == "CC" for c in acting) if grouped else None
    item.final_mcc_count = sum(c.level == "MCC" for c in acting) if grouped else None
    queue_service.transition(
        session,
        item=item,
        to_status=to_status,
        actor=actor,
        action="submit",
        reason=decision.reason,
    )
    return item, result


# ---------------------------------------------------------------- QA review


def qa_items(session: Session) -> list[tuple[WorkItem, str, str | None]]:
    """Items waiting for QA review, oldest coded first: (item, queue name, coder name)."""
    rows = session.exec(
        select(WorkItem, Queue.name, User.username)
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .outerjoin(User, col(User.id) == col(WorkItem.coded_by_id))
        .where(WorkItem.status == Status.qa_review)
        .order_by(col(WorkItem.coded_at), col(WorkItem.id))
        .limit(500)
    ).all()
    return [(i, q, u) for i, q, u in rows]


def billed_items(session: Session, *, limit: int = 50) -> list[tuple[WorkItem, str, str | None]]:
    """Billed items, most recently changed first (the ones a retrospective QA review can
    take): (item, queue name, coder name); no patient data."""
    rows = session.exec(
        select(WorkItem, Queue.name, User.username)
        .join(Queue, col(Queue.id) == col(WorkItem.queue_id))
        .outerjoin(User, col(User.id) == col(WorkItem.coded_by_id))
        .where(WorkItem.status == Status.billed)
        .order_by(col(WorkItem.updated_at).desc(), col(WorkItem.id).desc())
        .limit(limit)
    ).all()
    return [(i, q, u) for i, q, u in rows]


def qa_item(session: Session, *, actor: Principal, work_item_id: int) -> WorkItem:
    """An item in QA review (404 otherwise; 403 to the person who coded it), refusals
    audited as refused views."""
    item = session.get(WorkItem, work_item_id)
    if item is None or item.status != Status.qa_review:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.view_record,
            work_item_id=work_item_id,
            purpose="HOPERAT",
            detail="not waiting for QA review",
        )
        raise NotFound("No such item waiting for QA review.")
    if item.coded_by_id is not None and item.coded_by_id == actor.user_id:
        audit_service.record_denied(
            session,
            actor=actor,
            action=audit_service.Action.view_record,
            work_item_id=work_item_id,
            purpose="HOPERAT",
            detail="own chart",
        )
        raise Forbidden("You coded this chart: another reviewer must review it.")
    return item


@dataclass
class Accuracy:
    """One coder's QA results."""

    coder: str
    reviewed: int
    accepted: int

    @property
    def corrected(self) -> int:
        """Reviews that changed the codes."""
        return self.reviewed - self.accepted

    @property
    def accuracy_percent(self) -> float | None:
        """Reviews without an error as a share of reviewed (None before the first review)."""
        return round(100 * self.accepted / self.reviewed, 1) if self.reviewed else None


def accuracy(session: Session, *, coder_id: int | None = None) -> list[Accuracy]:
    """QA record accuracy per coder, by username, as the QA scores count it: final reviews
    only, `accepted` those without an error against the coder (`server.qa.scores`)."""
    return [
        Accuracy(coder=s.key or "", reviewed=s.records_reviewed, accepted=s.record_ok)
        for s in qa_scores.scores(session, by="coder", coder_id=coder_id)
    ]


def set_sample_percent(
    session: Session, *, actor: Principal, queue_name: str, percent: int
) -> Queue:
    """Set the share (0-100) of a queue's submitted items that go to QA review."""
    queue = queue_service.get_queue(session, name=queue_name)
    queue.qa_sample_percent = percent
    session.add(queue)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.queue_admin,
        purpose=None,
        detail=f"qa-sample queue={queue.id} percent={percent}",
    )
    return queue


def set_in_training(
    session: Session, *, actor: Principal, username: str, in_training: bool
) -> User:
    """Mark a coder as in training (every submitted item goes to QA review) or not."""
    user = auth_service.get_user_by_name(session, username=username)
    user.in_training = in_training
    session.add(user)
    session.flush()
    audit_service.record(
        session,
        actor=actor,
        action=audit_service.Action.user_admin,
        purpose=None,
        detail=f"in_training user={user.id} {in_training}",
    )
    return user


def coder_training(session: Session) -> list[tuple[str, bool]]:
    """Active coders and whether each is in training, by username."""
    rows = session.exec(
        select(User.username, User.in_training)
        .join(UserRole, col(UserRole.user_id) == col(User.id))
        .where(UserRole.role == "coder", col(User.is_active).is_(True))
        .order_by(col(User.username))
    ).all()
    return [(u, bool(t)) for u, t in rows]
