"""Loading CMS NCCI PTP and MUE files: layouts, history across quarters, bad files, the CLI."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select
from typer.testing import CliRunner

from server.cli import app
from server.edits import files
from server.errors import ValidationFailed
from server.models import EditFileLoad, MueEdit, NcciPtpEdit

DATA = Path(__file__).parent / "data"
PTP_Q1 = DATA / "ccipra-v320r0-f1.txt"
PTP_NEXT = DATA / "ccipra-v330r0-f1.txt"
MUE_Q4 = DATA / "MCR_MUE_PractitionerServices_Eff_10-01-2026.csv"
MUE_NEXT = DATA / "MCR_MUE_PractitionerServices_Eff_01-01-2027.csv"


def _ptp(session: Session) -> dict[tuple[str, str, date], NcciPtpEdit]:
    rows = session.exec(select(NcciPtpEdit).where(NcciPtpEdit.setting == "practitioner")).all()
    return {(r.column1, r.column2, r.effective): r for r in rows}


def test_ptp_file_as_cms_ships_it(session: Session):
    result = files.load(session, kind="ncci-ptp", setting="practitioner", path=PTP_Q1)
    assert (result.rows, result.quarter, result.already_loaded) == (5, "2026Q1", False)
    rows = _ptp(session)
    bundled = rows["80053", "80048", date(2005, 1, 1)]
    assert (bundled.modifier, bundled.deleted, bundled.quarter) == ("0", None, "2026Q1")
    assert bundled.rationale == "Misuse of column two code with column one code"
    assert rows["97140", "97530", date(2002, 1, 1)].deleted == date(2025, 1, 1)
    assert rows["93000", "93010", date(1996, 1, 1)].prior_1996
    assert rows["11042", "97597", date(2027, 1, 1)].modifier == "1"


def test_same_file_twice_is_a_no_op_and_a_newer_quarter_keeps_history(session: Session):
    files.load(session, kind="ncci-ptp", setting="practitioner", path=PTP_Q1)
    again = files.load(session, kind="ncci-ptp", setting="practitioner", path=PTP_Q1)
    assert again.already_loaded
    assert len(_ptp(session)) == 5
    newer = files.load(session, kind="ncci-ptp", setting="practitioner", path=PTP_NEXT)
    assert (newer.rows, newer.quarter) == (3, "2027Q1")
    rows = _ptp(session)
    assert len(rows) == 6  # one new edit; none lost, though the newer file lists fewer
    assert rows["80053", "80048", date(2005, 1, 1)].deleted == date(2027, 1, 1)
    assert rows["80053", "80048", date(2005, 1, 1)].quarter == "2026Q1"
    assert rows["97140", "97530", date(2002, 1, 1)].deleted == date(2025, 1, 1)
    assert ("36415", "36416", date(2027, 1, 1)) in rows
    # Loading the older quarter again never clears the deletion date the newer one gave.
    session.execute(EditFileLoad.__table__.delete())  # type: ignore[attr-defined]
    files.load(session, kind="ncci-ptp", setting="practitioner", path=PTP_Q1)
    assert _ptp(session)["80053", "80048", date(2005, 1, 1)].deleted == date(2027, 1, 1)


def test_settings_are_kept_apart(session: Session):
    files.load(session, kind="ncci-ptp", setting="hospital", path=DATA / "ccioph-v320r0-f1.txt")
    assert _ptp(session) == {}
    hospital = session.exec(select(NcciPtpEdit).where(NcciPtpEdit.setting == "hospital")).all()
    assert [(r.column1, r.column2) for r in hospital] == [("96372", "99211")]
    with pytest.raises(ValidationFailed, match="Unknown setting 'dme' for ncci-ptp"):
        files.load(session, kind="ncci-ptp", setting="dme", path=PTP_Q1)


def test_mue_tables_by_quarter(session: Session):
    first = files.load(session, kind="mue", setting="practitioner", path=MUE_Q4)
    assert (first.rows, first.quarter) == (4, "2026Q4")
    files.load(session, kind="mue", setting="practitioner", path=MUE_NEXT)
    rows = session.exec(select(MueEdit).order_by(col(MueEdit.code), col(MueEdit.effective))).all()
    got = [(r.code, r.effective.isoformat(), r.value, r.adjudication) for r in rows]
    assert ("97110", "2026-10-01", 6, 1) in got
    assert ("97110", "2027-01-01", 8, 1) in got
    assert ("96372", "2026-10-01", 4, 3) in got
    assert ("80053", "2026-10-01", 1, 2) in got
    assert len(got) == 7


def test_mue_without_an_effective_date_is_refused(session: Session, tmp_path: Path):
    plain = tmp_path / "mue.csv"
    plain.write_bytes(MUE_Q4.read_bytes())
    with pytest.raises(ValidationFailed, match="effective date"):
        files.load(session, kind="mue", setting="practitioner", path=plain)
    done = files.load(session, kind="mue", setting="dme", path=plain, effective=date(2026, 7, 1))
    assert (done.rows, done.quarter) == (4, "2026Q3")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("20610\t99214\t\t2011010", "line 7: 4 fields, a PTP edit has 6 or 7 (truncated?)"),
        ("20610\t99214\t\t20110101\t*\t2\tx", "line 7: modifier indicator '2' is not 0, 1 or 9"),
        ("20610\t99214\t\t20111301\t*\t1\tx", "line 7: effective date '20111301' is not a real"),
        ("20610\t99214\t\t20110101\t2010\t1\tx", "line 7: deletion date '2010' is not a date"),
        ("20610\t9921\t\t20110101\t*\t1\tx", "line 7: column 2 '9921' is not a CPT/HCPCS code"),
        ("garbage after the edits", "line 7: 'garbage after the ed' is not a CPT/HCPCS code"),
    ],
)
def test_a_bad_line_stops_the_load_and_changes_nothing(
    session: Session, tmp_path: Path, line: str, reason: str
):
    bad = tmp_path / "ccipra-v321r0-f1.txt"
    lines = PTP_Q1.read_text().splitlines()
    bad.write_text("\n".join([*lines[:6], line, *lines[6:]]) + "\n")
    with pytest.raises(files.FileRejected) as caught:
        files.load(session, kind="ncci-ptp", setting="practitioner", path=bad)
    assert caught.value.message.startswith(reason), caught.value.message
    assert "nothing was loaded" in caught.value.message


def test_cli_loads_refuses_and_reports(db_url: str, tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(
        app, ["codesets", "load", "ncci-ptp", str(PTP_Q1), "--setting", "practitioner"]
    )
    assert ok.exit_code == 0, ok.output
    assert "loaded 5 ncci-ptp practitioner edits (2026Q1)" in ok.output
    again = runner.invoke(
        app, ["codesets", "load", "ncci-ptp", str(PTP_Q1), "--setting", "practitioner"]
    )
    assert again.exit_code == 0
    assert "was already loaded" in again.output
    unknown = runner.invoke(
        app, ["codesets", "load", "ncci-ptp", str(PTP_Q1), "--setting", "facility"]
    )
    assert unknown.exit_code == 1
    assert "Unknown setting 'facility'" in unknown.output
    missing = runner.invoke(app, ["codesets", "load", "mue", str(MUE_Q4)])
    assert missing.exit_code == 1
    assert "needs --setting" in missing.output
    truncated = tmp_path / "MCR_MUE_PractitionerServices_Eff_04-01-2027.csv"
    text = MUE_NEXT.read_text()
    truncated.write_text(text[: text.rindex("99213") + 7])  # cut in the middle of the last line
    cut = runner.invoke(
        app, ["codesets", "load", "mue", str(truncated), "--setting", "practitioner"]
    )
    assert cut.exit_code == 1
    assert "line 5:" in cut.output
    with Session(_engine()) as s:
        assert s.exec(select(func.count()).select_from(MueEdit)).one() == 0
        assert s.exec(select(func.count()).select_from(NcciPtpEdit)).one() == 5


def _engine():  # type: ignore[no-untyped-def]
    from server.db import get_engine

    return get_engine()


def test_hospital_outpatient_edits_apply_to_hospital_claims(session: Session):
    from server.coding.schemas import Codes, ProcedureLine
    from server.edits import service as edits_service

    files.load(session, kind="ncci-ptp", setting="hospital", path=DATA / "ccioph-v320r0-f1.txt")
    files.load(session, kind="ncci-ptp", setting="practitioner", path=PTP_Q1)
    codes = Codes(
        procedures=[
            ProcedureLine(code="96372", dx_pointers=[1]),
            ProcedureLine(code="99211", dx_pointers=[1]),
        ]
    )

    def edits(setting: str | None) -> list[str]:
        ctx = edits_service.ClaimContext(
            inpatient=False,
            setting=setting,
            date_of_service=date(2026, 10, 1),
            payer_class="medicare",
        )
        return [f.edit for f in edits_service.check(session, codes=codes, context=ctx)]

    assert edits("hospital") == ["ncci-ptp"]
    assert edits("practitioner") == []
    assert edits(None) == []  # inpatient: no PTP
    assert edits_service.claim_setting("inpatient") is None
    assert edits_service.claim_setting("professional") == "practitioner"


def test_the_newest_mue_table_in_force_applies_whole(session: Session):
    from server.coding.schemas import Codes, ProcedureLine
    from server.edits import service as edits_service

    files.load(session, kind="mue", setting="practitioner", path=MUE_Q4)
    files.load(session, kind="mue", setting="practitioner", path=MUE_NEXT)
    codes = Codes(
        procedures=[
            ProcedureLine(code="80053", units=2, dx_pointers=[1]),
            ProcedureLine(code="99213", units=2, dx_pointers=[1]),
        ]
    )

    def over(day: date) -> list[str]:
        ctx = edits_service.ClaimContext(
            inpatient=False, setting="practitioner", date_of_service=day, payer_class="x"
        )
        return [str(f.code) for f in edits_service.check(session, codes=codes, context=ctx)]

    assert over(date(2026, 9, 30)) == []  # before any table
    assert over(date(2026, 12, 1)) == ["80053", "99213"]  # 2026Q4: both at most 1
    # 2027Q1: 99213 may be 2, and 80053 is no longer in the table.
    assert over(date(2027, 2, 1)) == []


def test_a_zip_as_cms_ships_the_quarter(session: Session, tmp_path: Path):
    import zipfile

    archive = tmp_path / "ccipra-v320r0.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ccipra-v320r0-f1.txt", PTP_Q1.read_bytes())
        z.writestr("ccipra-v320r0-f2.txt", (DATA / "ccioph-v320r0-f1.txt").read_bytes())
        z.writestr("readme.txt", "Quarterly NCCI PTP edits, practitioner.\n")
    done = files.load_any(session, kind="ncci-ptp", setting="practitioner", path=archive)
    assert (done.rows, done.quarter, done.already_loaded) == (6, "2026Q1", False)
    assert len(_ptp(session)) == 6
    again = files.load_any(session, kind="ncci-ptp", setting="practitioner", path=archive)
    assert again.already_loaded
    bad = tmp_path / "ccipra-v321r0.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("ccipra-v321r0-f1.txt", PTP_NEXT.read_bytes())
        z.writestr("ccipra-v321r0-f2.txt", "20610\t99214\t\t2011")
    with pytest.raises(files.FileRejected, match="ccipra-v321r0-f2.txt: line 1:"):
        files.load_any(session, kind="ncci-ptp", setting="practitioner", path=bad)


# ---------------------------------------------------------------- XLSX, as CMS also ships them


def _xlsx(path: Path, rows: list[list[object]], *, sheets: int = 1) -> Path:
    """A small workbook written by openpyxl: `rows` split over `sheets` sheets."""
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    per = -(-len(rows) // sheets)
    for n in range(sheets):
        sheet = book.create_sheet(f"Sheet{n + 1}")
        for row in rows[n * per : (n + 1) * per]:
            sheet.append(row)
    book.save(path)
    return path


PTP_XLSX_ROWS: list[list[object]] = [
    [
        "CPT codes, descriptions and other data only are copyright 2025 American Medical "
        "Association. Test slice written by hand in the layout of the CMS PTP table; not CMS data."
    ],
    [],
    [
        "Column 1",
        "Column 2",
        "*=in existence prior to 1996",
        "Effective Date",
        "Deletion Date *=no data",
        "Modifier 0=not allowed 1=allowed 9=not applicable",
        "PTP Edit Rationale",
    ],
    # Excel keeps codes and dates typed as numbers, and real dates as dates.
    [80053, 80048, None, 20050101, "*", 0, "Misuse of column two code with column one code"],
    [
        "00100",
        "01996",
        None,
        date(2010, 1, 1),
        "*",
        "1",
        "Standards of medical / surgical practice",
    ],
    [100, 1996, "*", "19960101", 20250101, 9, "CPT Manual or CMS manual coding instructions"],
]


def test_ptp_xlsx_as_cms_also_ships_it(session: Session, tmp_path: Path):
    path = _xlsx(tmp_path / "ccipra-v320r0-f1.xlsx", PTP_XLSX_ROWS)
    result = files.load_any(session, kind="ncci-ptp", setting="practitioner", path=path)
    assert (result.rows, result.quarter, result.already_loaded) == (3, "2026Q1", False)
    rows = _ptp(session)
    assert rows["80053", "80048", date(2005, 1, 1)].modifier == "0"
    assert rows["00100", "01996", date(2010, 1, 1)].rationale.startswith("Standards")
    numeric = rows["00100", "01996", date(1996, 1, 1)]  # leading zeros given back
    assert (numeric.deleted, numeric.modifier, numeric.prior_1996) == (date(2025, 1, 1), "9", True)
    assert files.load_any(
        session, kind="ncci-ptp", setting="practitioner", path=path
    ).already_loaded


def test_mue_xlsx_over_two_sheets(session: Session, tmp_path: Path):
    rows: list[list[object]] = [
        [
            "HCPCS/CPT Code",
            "Practitioner Services MUE Values",
            "MUE Adjudication Indicator",
            "MUE Rationale",
        ],
        [80053, 1, "2 Date of Service Edit: Policy", "CMS Policy"],
        ["97110", 6, "1 Line Edit", "Clinical: Data"],
        ["99213", 1.0, "2 Date of Service Edit: Policy", "Code Descriptor / CPT Instruction"],
    ]
    path = _xlsx(tmp_path / "MCR_MUE_PractitionerServices_Eff_10-01-2026.xlsx", rows, sheets=2)
    result = files.load(session, kind="mue", setting="practitioner", path=path)
    assert (result.rows, result.quarter) == (3, "2026Q4")
    got = session.exec(select(MueEdit).order_by(col(MueEdit.code))).all()
    assert [(r.code, r.value, r.adjudication) for r in got] == [
        ("80053", 1, 2),
        ("97110", 6, 1),
        ("99213", 1, 2),
    ]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ([20610, 99214, None, 2011010], "row 7: 4 fields, a PTP edit has 6 or 7 (truncated?)"),
        ([20610, 99214, None, 20110101, "*", 2, "x"], "row 7: modifier indicator '2' is not"),
        ([20610, 99214, None, "2011-13-01", "*", 1, "x"], "row 7: effective date '2011-13-01'"),
        (["garbage after the edits"], "row 7: 'garbage after the ed' is not a CPT/HCPCS code"),
    ],
)
def test_a_bad_xlsx_row_stops_the_load_and_changes_nothing(
    session: Session, tmp_path: Path, row: list[object], reason: str
):
    path = _xlsx(tmp_path / "ccipra-v321r0-f1.xlsx", [*PTP_XLSX_ROWS, row])
    with pytest.raises(files.FileRejected) as caught:
        files.load(session, kind="ncci-ptp", setting="practitioner", path=path)
    assert caught.value.message.startswith(reason), caught.value.message
    assert caught.value.details[0]["loc"] == ["row", 7]
    assert _ptp(session) == {}
    assert session.exec(select(func.count()).select_from(EditFileLoad)).one() == 0


def test_a_file_that_is_not_a_workbook_is_refused(db_url: str, tmp_path: Path):
    fake = tmp_path / "MCR_MUE_PractitionerServices_Eff_10-01-2026.xlsx"
    fake.write_bytes(MUE_Q4.read_bytes())  # a CSV renamed
    cut = tmp_path / "ccipra-v320r0-f1.xlsx"
    cut.write_bytes(_xlsx(tmp_path / "whole.xlsx", PTP_XLSX_ROWS).read_bytes()[:700])
    runner = CliRunner()
    for path, kind in ((fake, "mue"), (cut, "ncci-ptp")):
        out = runner.invoke(app, ["codesets", "load", kind, str(path), "--setting", "practitioner"])
        assert out.exit_code == 1
        assert f"{path.name}: not a readable XLSX workbook" in " ".join(out.output.split())
    ok = runner.invoke(
        app,
        [
            "codesets",
            "load",
            "ncci-ptp",
            str(tmp_path / "whole.xlsx"),
            "--setting",
            "practitioner",
            "--quarter",
            "2026Q1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "loaded 3 ncci-ptp practitioner edits (2026Q1)" in ok.output
    with Session(_engine()) as s:
        assert s.exec(select(func.count()).select_from(MueEdit)).one() == 0


def test_workbooks_are_parsed_with_xml_bomb_protection():
    import openpyxl.xml

    assert openpyxl.xml.DEFUSEDXML  # defusedxml is a dependency: openpyxl uses it


def test_a_workbook_broken_part_way_names_the_row(session: Session, tmp_path: Path):
    import zipfile

    whole = _xlsx(tmp_path / "whole.xlsx", PTP_XLSX_ROWS)
    broken = tmp_path / "ccipra-v320r0-f1.xlsx"
    with zipfile.ZipFile(whole) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: data.index(b'<row r="5"')] + b'<row r="5"><c r="A5" t="n"><v>1'
            dst.writestr(info, data)
    with pytest.raises(files.FileRejected) as caught:
        files.load(session, kind="ncci-ptp", setting="practitioner", path=broken)
    assert caught.value.message.startswith("row 5: the workbook cannot be read here")
    assert _ptp(session) == {}
