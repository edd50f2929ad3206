"""The code panel's HTML form: parallel field lists (dx_code, px_code, ...) as `Codes`."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from pydantic import ValidationError as PydanticValidationError
from starlette.datastructures import FormData

from server.coding.schemas import Codes, DiagnosisLine, Evidence, ProcedureLine
from server.errors import ValidationFailed


async def codes_form(request: Request) -> Codes:
    """Codes from the workbench form's parallel field lists (blank lines dropped)."""
    return codes_from_form(await request.form())


def _evidence(text: str) -> list[Evidence]:
    """'DOC:START-END DOC:START-END' (the row's hidden field) as links; malformed parts and
    more than ten are dropped (the field is written by the page, not typed)."""
    out: list[Evidence] = []
    for part in text.split()[:10]:
        doc, _, span = part.partition(":")
        start, _, end = span.partition("-")
        if doc.isdigit() and start.isdigit() and end.isdigit() and int(start) < int(end):
            try:
                out.append(Evidence(document=int(doc), start=int(start), end=int(end)))
            except PydanticValidationError:
                continue
    return out


def codes_from_form(form: FormData) -> Codes:
    """Codes from the workbench form's parallel field lists; ValidationFailed if malformed."""

    def values(name: str) -> list[str]:
        return [v for v in form.getlist(name) if isinstance(v, str)]

    dx_code, px_code = values("dx_code"), values("px_code")

    def pad(name: str, n: int) -> list[str]:
        got = values(name)
        return got + [""] * (n - len(got))

    diagnoses = [
        DiagnosisLine(code=c.strip()[:10], poa=p.strip()[:1] or None, evidence=_evidence(ev))
        for c, p, ev in zip(
            dx_code, pad("dx_poa", len(dx_code)), pad("dx_evidence", len(dx_code)), strict=False
        )
        if c.strip()
    ]
    n = len(px_code)
    procedures: list[ProcedureLine] = []
    for system, code, mods, units, pointers, charge, evidence, charge_code in zip(
        pad("px_system", n),
        px_code,
        pad("px_modifiers", n),
        pad("px_units", n),
        pad("px_pointers", n),
        pad("px_charge", n),
        pad("px_evidence", n),
        pad("px_charge_code", n),
        strict=False,
    ):
        if not code.strip() and not charge_code.strip():
            continue
        line = len(procedures) + 1
        units = units.strip() or "1"
        if not re.fullmatch(r"[0-9]{1,3}", units) or int(units) < 1:
            raise ValidationFailed(
                f"Procedure line {line}: Units must be a whole number of 1 or more (999 at most).",
                details=[
                    {
                        "loc": ["procedures", line - 1, "units"],
                        "msg": "Units must be a whole number of 1 or more.",
                    }
                ],
            )
        try:
            procedures.append(
                ProcedureLine(
                    code=code.strip()[:10],
                    system=(system or "CPT").upper(),
                    modifiers=mods.replace(",", " ").upper().split()[:4],
                    units=int(units),
                    dx_pointers=[int(p) for p in pointers.replace(",", " ").split()][:4],
                    charge=float(charge or 0),
                    evidence=_evidence(evidence),
                    charge_code=charge_code.strip()[:20] or None,
                )
            )
        except (ValueError, PydanticValidationError) as exc:
            raise ValidationFailed(
                f"Procedure line {line}: pointers and charge must be "
                "numbers, and the system CPT, HCPCS or PCS.",
                details=[{"loc": ["procedures", len(procedures)], "msg": "not a number"}],
            ) from exc
    unrelated = [
        (a.strip()[:10], b.strip()[:10])
        for a, _, b in (v.partition("|") for v in values("unrelated")[:25])
        if a.strip() and b.strip()
    ]
    try:
        return Codes(diagnoses=diagnoses, procedures=procedures, unrelated=unrelated)
    except PydanticValidationError as exc:
        raise ValidationFailed(
            "Too many lines (50 diagnoses and 50 procedures at most).",
            details=[{"loc": ["codes"], "msg": "too many lines"}],
        ) from exc


CodesForm = Annotated[Codes, Depends(codes_form)]
