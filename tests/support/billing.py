"""Helpers for the billing tests: the demo chargemaster, X12 segments and their elements."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from server.billing import cdm, x12
from server.db import get_engine
from server.records.demo import DEMO_PAYER_IDS
from server.records.demo import with_coverage as demo_coverage


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


# The demo EHR's Coverage (member id, payer id) added to a Synthea bundle, and its payer ids.
PAYER_IDS = DEMO_PAYER_IDS
with_coverage = demo_coverage


def sample_claim(**changes: Any) -> x12.ClaimData:
    """A claim of a made-up patient with an address, a payer and a member id (a stay from
    2026-11-01 08:00 to 11-04 12:00 UTC, work item 42), with `changes` applied."""
    claim = x12.ClaimData(
        work_item_id=42,
        inpatient=False,
        patient_last="Rempel",
        patient_first="Maria Elena",
        birth_date="1961-03-14",
        sex="female",
        address_line="41 Orchard Lane",
        city="Amherst",
        state="MA",
        postal_code="01002",
        payer_name="Blue Cross Blue Shield",
        member_id="XBC1234",
        payer_id="BCBSMA",
        start=datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
        end=datetime(2026, 11, 4, 12, 0, tzinfo=UTC),
        diagnoses=[],
        lines=[],
    )
    return dataclasses.replace(claim, **changes)
