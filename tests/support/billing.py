"""Helpers for the billing tests: the demo chargemaster, X12 segments and their elements."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session

from server.billing import cdm
from server.db import get_engine


def load_demo_cdm() -> None:
    """Load the chargemaster `chartdesk demo` ships (effective 1980-01-01)."""
    with Session(get_engine()) as s:
        cdm.load(s, path=cdm.DEMO_FILE)
        s.commit()


def segments(text: str, tag: str) -> list[list[str]]:
    """Every segment `tag` of an X12 text, as its elements (tag first)."""
    out = []
    for raw in text.split("~"):
        seg = raw.strip()
        if seg.split("*", 1)[0] == tag:
            out.append(seg.split("*"))
    return out


def cents(amount: str) -> int:
    """An X12 amount ('1200', '12.5') as cents."""
    assert re.fullmatch(r"\d+(\.\d{1,2})?", amount), amount
    return round(float(amount) * 100)


# Clearinghouse payer ids the test EHR sends in Coverage.payor (public 5-character ids of
# the national payers; the Blue Cross plan and Medicaid ids are the test clearinghouse's).
PAYER_IDS = {
    "Aetna": "60054",
    "Humana": "61101",
    "UnitedHealthcare": "87726",
    "Blue Cross Blue Shield": "BCBSMA",
    "Medicaid": "SKMA0",
}


def with_coverage(bundle: dict[str, Any], *, self_pay_to: str | None = None) -> dict[str, Any]:
    """The Synthea bundle plus one Coverage per payer its Claims name (Synthea leaves the
    subscriber id and payer id out), as a hospital EHR sends them; self-pay gets none, or
    with `self_pay_to` the patient was since enrolled with that payer (Claims say so)."""
    import copy
    import hashlib

    out = copy.deepcopy(bundle)
    entries = out["entry"]
    if self_pay_to:
        for e in entries:
            for ins in e["resource"].get("insurance") or []:
                if ins.get("coverage", {}).get("display") == "NO_INSURANCE":
                    ins["coverage"]["display"] = self_pay_to
    patient = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
    names = {
        ins["coverage"]["display"]
        for e in entries
        if e["resource"]["resourceType"] == "Claim"
        for ins in e["resource"].get("insurance") or []
        if ins.get("coverage", {}).get("display")
    }
    for n, name in enumerate(sorted(names)):
        if name not in PAYER_IDS:
            continue  # NO_INSURANCE: self-pay, nobody to bill
        member = "M" + hashlib.sha256(f"{patient['fullUrl']}|{name}".encode()).hexdigest()[:9]
        entries.append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
                "resource": {
                    "resourceType": "Coverage",
                    "id": f"coverage-{n}",
                    "status": "active",
                    "subscriberId": member.upper(),
                    "beneficiary": {"reference": patient["fullUrl"]},
                    "payor": [{"display": name, "identifier": {"value": PAYER_IDS[name]}}],
                },
                "request": {"method": "POST", "url": "Coverage"},
            }
        )
    return out
