"""The compliance search's Export button: every filter applies, MRNs stay out of URLs and
the audit log, and the export is audited before any data leaves."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlmodel import Session, col, select

from server.db import get_engine
from server.models import AuditEvent
from tests.support.factories import make_encounter, make_user, sign_in
from tests.test_audit_review import MRN, PATIENT, _write


def _exports() -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent)
                .where(AuditEvent.action == "audit-export")
                .order_by(col(AuditEvent.id))
            ).all()
        )


def _officer(make_client: Any) -> Any:
    page = make_client()
    sign_in(page, make_user("comp", "compliance"))
    return page


def test_export_button_exports_the_search_results_as_csv_and_fhir(make_client: Any) -> None:
    page = _officer(make_client)
    for i in range(3):
        _write("ann", "claim", work_item=i + 1)
    _write("bob", "claim", work_item=9)
    found = page.post("/compliance/search", data={"actor": "ann", "action": "claim"})
    assert 'id="export-csv"' in found.text
    assert 'id="audit-legend"' in found.text
    assert '<abbr title="Leased a chart to code (Next)">claim</abbr>' in found.text
    assert 'action="/compliance/export"' in found.text

    form = {"actor": "ann", "action": "claim", "format": "csv"}
    got = page.post("/compliance/export", data=form)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert 'filename="audit-events.csv"' in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [(r["actor"], r["action"], r["work_item"]) for r in rows] == [
        ("ann", "claim", "1"),
        ("ann", "claim", "2"),
        ("ann", "claim", "3"),
    ]
    exports = _exports()
    assert len(exports) == 1
    assert exports[0].actor == "comp"
    assert "format=csv" in (exports[0].detail or "")
    assert "actor=ann" in (exports[0].detail or "")

    fhir = page.post("/compliance/export", data={**form, "format": "fhir"})
    assert fhir.headers["content-type"].startswith("application/fhir+ndjson")
    lines = [json.loads(line) for line in fhir.text.splitlines()]
    assert len(lines) == 3
    assert all(r["resourceType"] == "AuditEvent" for r in lines)


def test_export_by_mrn_names_the_patient_by_id_only(make_client: Any) -> None:
    ours = make_encounter(patient=PATIENT)
    coder = make_client()
    sign_in(coder, make_user("cora", "coder", queues=["default"]))
    assert coder.post("/api/v1/work/next").json()["id"] == ours
    assert coder.get(f"/api/v1/work/{ours}").status_code == 200
    page = _officer(make_client)
    got = page.post(
        "/compliance/export", data={"mrn": MRN.lower(), "action": "view-record", "format": "csv"}
    )
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert rows
    assert {r["work_item"] for r in rows} == {str(ours)}
    assert MRN not in got.text
    export = _exports()[-1]
    assert export.patient_id is not None
    assert export.mrn_index
    assert MRN not in (export.detail or "")
    assert MRN.lower() not in (export.detail or "")
    nobody = page.post("/compliance/export", data={"mrn": "NO-SUCH-MRN", "format": "csv"})
    assert nobody.text.strip() == ",".join(
        [
            "id",
            "time",
            "action",
            "outcome",
            "actor",
            "actor_kind",
            "actor_roles",
            "patient",
            "work_item",
            "source_ip",
            "user_agent",
            "request_id",
            "purpose",
            "detail",
        ]
    )


def test_a_bad_export_shows_the_search_page_with_why(make_client: Any) -> None:
    page = _officer(make_client)
    bad = page.post("/compliance/export", data={"format": "xml"})
    assert bad.status_code == 422
    assert 'id="search-error"' in bad.text
    assert _exports() == []
    coder = make_client()
    sign_in(coder, make_user("cody", "coder"))
    assert coder.post("/compliance/export", data={"format": "csv"}).status_code == 403


def test_every_action_and_purpose_has_a_legend() -> None:
    from server.audit.service import Action
    from server.web.templates import templates

    legend = templates.env.get_template("audit/_legend.html").module
    assert set(legend.ACTION_TITLES) == {a.value for a in Action}  # type: ignore[attr-defined]
    assert {"TREAT", "ETREAT", "HOPERAT", "HCOMPL"} <= set(legend.PURPOSE_TITLES)  # type: ignore[attr-defined]
