"""The chargemaster: `codesets load cdm FILE`, effective dates, bad files, and the prices a
claim line takes from it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from server.billing import cdm
from server.cli import app
from server.db import get_engine
from server.edits.files import FileRejected
from server.models import ChargeItem

HEADER = "Charge Code,Description,Revenue Code,HCPCS/CPT,Price,Effective Date\n"
GOOD = (
    HEADER
    + "OV99213,OFFICE VISIT EST LEVEL 3,0510,99213,185.00,2026-01-01\n"
    + 'LAB36415,VENIPUNCTURE,300,36415,"$1,028.50",01/01/2026\n'
    + "RB0120,ROOM AND BOARD SEMI-PRIVATE,0120,,2850,2026-01-01\n"
)


def _write(tmp_path: Path, text: str, name: str = "cdm.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(ChargeItem)).one()


def test_a_chargemaster_loads_once_and_prices_by_date(session: Session, tmp_path: Path):
    first = cdm.load(session, path=_write(tmp_path, GOOD))
    assert (first.rows, first.added, first.already_loaded) == (3, 3, False)
    again = cdm.load(session, path=_write(tmp_path, GOOD))
    assert again.already_loaded
    assert _count(session) == 3
    # Next year's price list: a new row, the old price still holds for older dates of service.
    later = _write(
        tmp_path,
        HEADER + "OV99213,OFFICE VISIT EST LEVEL 3,0510,99213,199.00,2027-01-01\n",
        "cdm2027.csv",
    )
    assert cdm.load(session, path=later).added == 1
    assert cdm.by_hcpcs(session, codes=["99213"], on=date(2026, 6, 1))["99213"].price_cents == 18500
    assert cdm.by_hcpcs(session, codes=["99213"], on=date(2027, 2, 1))["99213"].price_cents == 19900
    assert cdm.by_hcpcs(session, codes=["99213"], on=date(2025, 12, 31)) == {}
    lab = cdm.by_hcpcs(session, codes=["36415"], on=date(2026, 6, 1))["36415"]
    assert (lab.revenue_code, lab.price_cents) == ("0300", 102850)  # padded; $ and , read
    room = cdm.by_revenue(session, revenue_codes=["0120"], on=date(2026, 6, 1))["0120"]
    assert (room.hcpcs, room.price_cents) == (None, 285000)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("OV1,VISIT,0510,99213,abc,2026-01-01", "line 5: price 'abc' is not an amount"),
        ("OV1,VISIT,0510,99213,-5,2026-01-01", "line 5: price '-5' is not between"),
        ("OV1,VISIT,0510,99213,1.005,2026-01-01", "line 5: price '1.005' has more"),
        ("OV1,VISIT,51,99213,1,2026-01-01", "line 5: revenue code '51'"),
        ("OV1,VISIT,0510,9921,1,2026-01-01", "line 5: HCPCS/CPT '9921'"),
        ("OV1,VISIT,0510,99213,1,2026-13-01", "line 5: effective date '2026-13-01'"),
        ("OV1,VISIT,0510,99213,1", "line 5: 5 fields"),
        ("OV1,,0510,99213,1,2026-01-01", "line 5: the description is empty"),
        (
            "OV99213,AGAIN,0510,99213,1,2026-01-01",
            "line 5: charge code OV99213 effective 2026-01-01 is also on line 2",
        ),
    ],
)
def test_a_malformed_chargemaster_says_where_and_changes_nothing(
    session: Session, tmp_path: Path, line: str, reason: str
):
    with pytest.raises(FileRejected) as caught:
        cdm.load(session, path=_write(tmp_path, GOOD + line + "\n"))
    assert caught.value.message.startswith(reason), caught.value.message
    assert "nothing was loaded" in caught.value.message
    assert caught.value.details[0]["loc"] == ["line", 5]
    assert _count(session) == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("code,description,price\nOV1,VISIT,1\n", "line 1: the header names no revenue code"),
        (HEADER, "No chargemaster lines"),
        ("", "No chargemaster lines"),
    ],
)
def test_a_file_that_is_no_chargemaster_is_refused(
    session: Session, tmp_path: Path, text: str, reason: str
):
    with pytest.raises(FileRejected) as caught:
        cdm.load(session, path=_write(tmp_path, text))
    assert caught.value.message.startswith(reason), caught.value.message
    assert _count(session) == 0


def test_pcs_procedures_map_to_revenue_codes_by_rule():
    assert cdm.pcs_revenue_code("0DTJ4ZZ") == "0360"  # medical-surgical: operating room
    assert cdm.pcs_revenue_code("0HQ9XZZ") == "0761"  # skin: treatment room
    assert cdm.pcs_revenue_code("B2111ZZ") == "0482"  # imaging of the heart
    assert cdm.pcs_revenue_code("BW03ZZZ") == "0320"  # other imaging: radiology
    assert cdm.pcs_revenue_code("10E0XZZ") == "0720"  # delivery
    assert cdm.pcs_revenue_code("99213") is None


def test_cli_loads_reports_and_refuses(db_url: str, tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["codesets", "load", "cdm", str(_write(tmp_path, GOOD))])
    assert ok.exit_code == 0, ok.output
    assert "loaded 3 chargemaster lines (3 new, newest effective 2026-01-01)" in ok.output
    again = runner.invoke(app, ["codesets", "load", "cdm", str(_write(tmp_path, GOOD))])
    assert again.exit_code == 0
    assert "was already loaded" in again.output
    bad = _write(tmp_path, GOOD + "X1,THING,0510,99213,12..5,2026-01-01\n", "bad.csv")
    refused = runner.invoke(app, ["codesets", "load", "cdm", str(bad)])
    assert refused.exit_code == 1
    assert "line 5: price '12..5' is not an amount" in refused.output
    demo = runner.invoke(app, ["codesets", "load", "cdm", str(cdm.DEMO_FILE)])
    assert demo.exit_code == 0, demo.output
    with Session(get_engine()) as s:
        assert _count(s) == 3 + len(cdm.parse(cdm.DEMO_FILE))
