"""Code sets: real ICD-10-CM codes from the shipped CMS release, format checks, loaded files."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from server.coding import codesets
from server.errors import ValidationFailed


def test_real_icd10cm_codes_exist_and_headers_are_not_billable():
    index = codesets.icd10cm()
    for code in ("E11.9", "I10", "J45.909", "e119", "S52.501A"):
        entry = index.get(code)
        assert entry is not None, code
        assert entry.billable, code
    header = index.get("E11")
    assert header is not None
    assert not header.billable
    assert header.description == "Type 2 diabetes mellitus"
    assert index.get("ZZZ.9") is None


def test_manifestation_codes_are_flagged():
    index = codesets.icd10cm()
    g63 = index.get("G63")
    assert g63 is not None
    assert g63.manifestation
    assert g63.code_first
    e119 = index.get("E11.9")
    assert e119 is not None
    assert not e119.manifestation


def test_search_by_prefix_and_by_words():
    index = codesets.icd10cm()
    by_prefix = [e.display for e in index.prefix("E11.6", 50)]
    assert by_prefix[0] == "E11.6"
    assert "E11.65" in by_prefix
    assert all(c.startswith("E11.6") for c in by_prefix)
    words = index.words_search("type 2 diab without compl", 10)
    assert [e.display for e in words][0] == "E11.9"
    assert index.words_search("asthma uncomplicated unspecified", 10)[0].display == "J45.909"
    assert index.words_search("zzzqqq", 10) == []


@pytest.mark.parametrize(
    ("system", "code", "ok"),
    [
        ("CPT", "99213", True),
        ("CPT", "0001F", True),
        ("CPT", "0519T", True),
        ("CPT", "9921", False),
        ("CPT", "99213X", False),
        ("HCPCS", "J1100", True),
        ("HCPCS", "W1100", False),
        ("HCPCS", "J110", False),
        ("PCS", "0DTJ4ZZ", True),
        ("PCS", "0DTJ4ZO", False),  # O is not a PCS character
        ("PCS", "0DTI4ZZ", False),  # nor is I
        ("PCS", "0DTJ4Z", False),
    ],
)
def test_format_checks(system: str, code: str, ok: bool):
    assert codesets.format_ok(system, code) is ok


def test_loading_a_cpt_file_replaces_the_set_and_rejects_bad_lines(
    session: Session, tmp_path: Path
):
    good = tmp_path / "cpt.csv"
    good.write_text(
        "code,description\n99213,Office visit est 20-29 min\n99214,Office visit est 30-39\n"
    )
    assert codesets.load(session, system="CPT", path=good) == 2
    session.commit()
    assert codesets.loaded_count(session, system="CPT") == 2
    assert codesets.loaded_codes(session, system="CPT", codes=["99213", "99999"]) == {"99213"}
    hits = codesets.search(session, system="CPT", query="9921")
    assert [h.code for h in hits] == ["99213", "99214"]
    bad = tmp_path / "bad.csv"
    bad.write_text("99213,ok\nABCDE,not a code\n")
    with pytest.raises(ValidationFailed) as exc:
        codesets.load(session, system="CPT", path=bad)
    assert exc.value.details[0]["loc"] == ["line", 2]
    session.rollback()
    assert codesets.loaded_count(session, system="CPT") == 2  # unchanged


def test_cms_file_layouts_parse():
    header = "00001 001     0 " + "Central Nervous System and Cranial Nerves, Bypass".ljust(61)
    code = "00002 0016070 1 " + "Bypass Cereb Vent to Nasophar with Autol Sub, Open".ljust(61)
    long = "Bypass Cerebral Ventricle to Nasopharynx with Autologous Tissue Substitute"
    pcs = f"{header}Bypass\n{code}{long}\n{header}Bypass\n"
    # Header lines (flag 0, codes of 3-6 characters) are skipped wherever they are.
    assert codesets.parse_code_file("PCS", pcs) == [("0016070", long)]
    hcpcs = "J1100" + "00100" + "1" + "Injection, dexamethasone, 1 mg".ljust(80) + "\n"
    assert codesets.parse_code_file("HCPCS", hcpcs)[0][0] == "J1100"


def test_chartdesk_codesets_load_command(db_url: str, tmp_path: Path):
    from typer.testing import CliRunner

    from server.cli import app as cli
    from server.db import get_engine

    runner = CliRunner()
    hcpcs = tmp_path / "hcpcs.csv"
    hcpcs.write_text("HCPC,LONG DESCRIPTION\nJ1100,Injection dexamethasone\nA0428,Ambulance BLS\n")
    result = runner.invoke(cli, ["codesets", "load", "hcpcs", str(hcpcs)])
    assert result.exit_code == 0, result.output
    assert "loaded 2 HCPCS codes" in result.output
    bad = tmp_path / "bad.txt"
    bad.write_text("99213\tvisit\nhello\tworld\n")
    result = runner.invoke(cli, ["codesets", "load", "cpt", str(bad)])
    assert result.exit_code == 1
    assert "'hello' is not a CPT code" in result.output
    result = runner.invoke(cli, ["codesets", "load", "icd10cm", str(hcpcs)])
    assert result.exit_code == 1
    with Session(get_engine()) as s:
        assert codesets.loaded_count(s, system="HCPCS") == 2
        assert codesets.loaded_count(s, system="CPT") == 0


def test_word_search_ranks_the_words_as_typed_first():
    hits = codesets.icd10cm().words_search("type 2 diabetes", 10)
    assert hits
    assert all(h.display.startswith("E11") for h in hits)  # not "type 1 ... stage 2"
    pneumonia = codesets.icd10cm().words_search("pneumonia", 5)
    assert all(h.description.lower().startswith("pneumonia") for h in pneumonia)
