"""Reminders of escalated queries by mail, to a real (local) SMTP server: a link, no PHI."""

from __future__ import annotations

from datetime import date, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session
from typer.testing import CliRunner

from server.cli import app as cli
from server.config import get_settings
from server.db import get_engine
from server.models import PhysicianQuery
from tests.support.coding import coder_with_item
from tests.support.factories import make_user
from tests.support.pgcluster import free_port

NAME = "Octavia Brennan-Szabo"
MRN = "MRN-OCTA-3310"
NPI = "1245319599"
PASSAGE = "bilateral pitting edema to the knees"
QUESTION = "Which condition do the edema and dyspnea findings indicate?"
OPTIONS = ["Acute on chronic diastolic heart failure", "other", "clinically undetermined"]


class _Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Any:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("CHARTDESK_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CHARTDESK_SMTP_PORT", str(port))
    monkeypatch.setenv("CHARTDESK_SMTP_FROM", "chartdesk@hospital.example")
    monkeypatch.setenv("CHARTDESK_QUERY_ESCALATION_EMAILS", '["cdi-leads@hospital.example"]')
    monkeypatch.setenv("CHARTDESK_PUBLIC_URL", "https://chartdesk.hospital.example/")
    get_settings.cache_clear()
    yield inbox
    controller.stop()


def _text(raw: bytes) -> tuple[Message, str]:
    msg = message_from_bytes(raw)
    body = msg.get_payload(decode=True) if not msg.is_multipart() else b""
    assert isinstance(body, bytes)
    return msg, body.decode()


def test_escalation_mails_a_link_and_no_patient_data(make_client, smtp):
    held = coder_with_item(
        make_client,
        patient={"mrn": MRN, "name": NAME, "birth_date": date(1951, 8, 30)},
        documents=[{"title": "H&P", "type": "34117-2", "text": f"Legs: {PASSAGE}.\n"}],
        providers=[{"npi": NPI, "name": "Dr. Ada Whitlock"}],
    )
    doc = held.client.get(f"/api/v1/work/{held.item_id}").json()["documents"][0]
    start = doc["text"].index(PASSAGE)
    r = held.client.post(
        f"/api/v1/work/{held.item_id}/queries",
        json={
            "template": "multiple_choice",
            "question": QUESTION,
            "options": OPTIONS,
            "indicators": [{"document": doc["id"], "start": start, "end": start + len(PASSAGE)}],
            "provider": NPI,
        },
    )
    qid = r.json()["id"]
    with Session(get_engine()) as s:
        query = s.get(PhysicianQuery, qid)
        assert query is not None
        query.created_at -= timedelta(days=10)
        s.add(query)
        s.commit()
    from server.auth import service as auth_service

    with Session(get_engine()) as s:
        auth_service.create_user(
            s,
            username="drwhit",
            roles=["provider"],
            password="correct horse battery staple",
            npi=NPI,
            email="ada.whitlock@hospital.example",
        )
        s.commit()

    out = CliRunner().invoke(cli, ["queries", "escalate"])
    assert out.exit_code == 0, out.output
    assert "escalated 1 open queries; sent 2 reminder(s)" in out.output
    assert sorted(to for tos, _ in smtp.mails for to in tos) == [
        "ada.whitlock@hospital.example",
        "cdi-leads@hospital.example",
    ]
    for _, raw in smtp.mails:
        msg, body = _text(raw)
        assert msg["Subject"] == "Chartdesk: a documentation query is waiting"
        assert f"https://chartdesk.hospital.example/queries/{qid}" in body.splitlines()
        everything = raw.decode(errors="replace")
        needles = [NAME, "Brennan", MRN, PASSAGE, "edema", QUESTION, *OPTIONS[:1], "Whitlock"]
        assert [n for n in needles if n in everything] == []
    # Escalated once, mailed once.
    again = CliRunner().invoke(cli, ["queries", "escalate"])
    assert "escalated 0 open queries; sent 0 reminder(s)" in again.output
    assert len(smtp.mails) == 2


def test_a_mail_server_down_never_undoes_the_escalation(make_client, monkeypatch):
    monkeypatch.setenv("CHARTDESK_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CHARTDESK_SMTP_PORT", str(free_port()))  # nobody listening
    monkeypatch.setenv("CHARTDESK_QUERY_ESCALATION_EMAILS", '["cdi-leads@hospital.example"]')
    get_settings.cache_clear()
    held = coder_with_item(make_client, providers=[{"npi": NPI, "name": "Dr. Ada Whitlock"}])
    doc = held.client.get(f"/api/v1/work/{held.item_id}").json()["documents"][0]
    r = held.client.post(
        f"/api/v1/work/{held.item_id}/queries",
        json={
            "template": "open_ended",
            "question": "What does the note's chest finding represent?",
            "indicators": [{"document": doc["id"], "start": 0, "end": 10}],
            "provider": NPI,
        },
    )
    qid = r.json()["id"]
    with Session(get_engine()) as s:
        query = s.get(PhysicianQuery, qid)
        assert query is not None
        query.created_at -= timedelta(days=10)
        s.add(query)
        s.commit()
    make_user("sam", "supervisor")
    out = CliRunner().invoke(cli, ["queries", "escalate"])
    assert out.exit_code == 0, out.output
    assert "escalated 1 open queries; sent 0 reminder(s)" in out.output
    with Session(get_engine()) as s:
        query = s.get(PhysicianQuery, qid)
        assert query is not None
        assert query.escalated_at is not None
