"""One chart open is one audited view, and a QA reviewer's view is not an off-queue look."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from server.audit import review
from server.auth.principal import system_principal
from server.db import get_engine
from server.models import AuditEvent
from server.models.base import utcnow
from tests.support.coding import GOOD_CODES, coder_with_item, signed_in


def _views(item_id: int, actor: str) -> list[AuditEvent]:
    with Session(get_engine()) as s:
        return list(
            s.exec(
                select(AuditEvent).where(
                    AuditEvent.work_item_id == item_id,
                    AuditEvent.action == "view-record",
                    AuditEvent.actor == actor,
                )
            ).all()
        )


def test_opening_the_chart_page_writes_one_view_and_shows_the_code_panel(make_client):
    held = coder_with_item(make_client, "ana")
    page = held.client.get(f"/work/{held.item_id}")
    assert page.status_code == 200
    assert 'id="codes-form"' in page.text  # the panel comes with the chart, no second fetch
    assert len(_views(held.item_id, "ana")) == 1


def test_a_qa_review_view_raises_no_outside_lease_flag(make_client):
    held = coder_with_item(make_client, "trainee", in_training=True)
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    assert held.client.post(f"/api/v1/work/{held.item_id}/submit").status_code == 200
    sup = signed_in(make_client, "sup1", "supervisor")
    assert sup.get(f"/qa/{held.item_id}").status_code == 200
    assert len(_views(held.item_id, "sup1")) == 1
    with Session(get_engine()) as s:
        flags = review.review_flags(
            s,
            actor=system_principal("test"),
            since=utcnow() - timedelta(hours=1),
            until=utcnow() + timedelta(minutes=1),
        )
    assert [f for f in flags if f.kind == "outside-lease" and f.actor == "sup1"] == []


def test_each_saved_code_line_shows_its_description(make_client):
    held = coder_with_item(make_client, "ana")
    held.client.put(f"/api/v1/work/{held.item_id}/codes", json=GOOD_CODES)
    page = held.client.get(f"/work/{held.item_id}")
    assert page.status_code == 200
    # E11.9 from the ICD-10-CM release the app ships, beside the code.
    assert "Type 2 diabetes mellitus without complications" in page.text


def test_the_service_type_shows_by_its_name_not_a_bare_snomed_number(make_client):
    import json

    from server.records import fhir
    from server.records.demo import SAMPLES

    bundle = json.loads((SAMPLES / "rodney_7e869f79.json").read_text())
    encounters = fhir.parse_bundle(bundle)
    named = [e for e in encounters if e.hints.service_type_display]
    assert len(named) == len(encounters)
    first = named[0]
    assert first.service_type is not None
    assert first.service_type.isdigit()  # the clear column keeps the code for routing
    assert not first.hints.service_type_display.isdigit()  # the coder reads its name
