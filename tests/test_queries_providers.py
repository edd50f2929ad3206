"""Providers: encounter practitioners from FHIR (NPI), and provider accounts linked by NPI."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from server.cli import app as cli
from server.db import get_engine
from server.errors import AppError
from server.models import Encounter, EncounterProvider, ProviderAccount, User
from server.records import fhir
from tests.support.factories import make_token, make_user
from tests.support.records import FHIR, fixture_files, load


def _providers(session: Session, external_id: str) -> list[tuple[str, str, str | None]]:
    rows = session.exec(
        select(EncounterProvider.npi, EncounterProvider.name, EncounterProvider.role)
        .join(Encounter, Encounter.id == EncounterProvider.encounter_id)  # type: ignore[arg-type]
        .where(Encounter.external_id == external_id)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_synthea_participants_become_the_encounters_providers(make_client):
    path = fixture_files()[0]
    bundle = load(path)
    encounters = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    ]
    ref = encounters[0]["participant"][0]["individual"]
    npi = ref["reference"].rsplit("|", 1)[1]
    ingest = make_client()
    ingest.headers["Authorization"] = f"Bearer {make_token('ie', 'ingest')}"
    assert ingest.post("/api/v1/fhir", content=path.read_bytes(), headers=FHIR).status_code == 200
    parsed = fhir.parse_bundle(bundle)
    with Session(get_engine()) as session:
        stored = _providers(session, parsed[0].external_id)
    assert stored == [(npi, ref["display"], "PPRF")]


def test_a_practitioner_in_the_bundle_gives_its_npi_and_name():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {"resourceType": "Patient", "id": "p1", "name": [{"text": "Pat Q"}]},
            },
            {
                "fullUrl": "urn:uuid:dr1",
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [{"system": fhir.NPI_SYSTEM, "value": "1245319599"}],
                    "name": [{"given": ["Ada"], "family": "Whitlock", "prefix": ["Dr."]}],
                },
            },
            {
                "fullUrl": "urn:uuid:dr2",
                "resource": {"resourceType": "Practitioner", "name": [{"text": "No NPI"}]},
            },
            {
                "fullUrl": "urn:uuid:e1",
                "resource": {
                    "resourceType": "Encounter",
                    "id": "e1",
                    "class": {"code": "AMB"},
                    "subject": {"reference": "urn:uuid:p1"},
                    "participant": [
                        {"individual": {"reference": "urn:uuid:dr1"}},
                        {"individual": {"reference": "urn:uuid:dr2"}},
                        {"individual": {"reference": "urn:uuid:dr1"}},  # listed twice
                    ],
                },
            },
        ],
    }
    [enc] = fhir.parse_bundle(bundle)
    assert [(p.npi, p.name) for p in enc.providers] == [("1245319599", "Ada Whitlock")]


def test_provider_accounts_need_an_npi(db_url):
    runner = CliRunner()
    r = runner.invoke(
        cli, ["user", "create", "drwhit", "--role", "provider", "--npi", "1245319599"], input="\n"
    )
    assert r.exit_code == 0, r.output
    with Session(get_engine()) as session:
        user = session.exec(select(User).where(User.username == "drwhit")).one()
        link = session.get(ProviderAccount, user.id)
        assert link is not None
        assert link.npi == "1245319599"
    # No NPI, a malformed one, one already taken, or an NPI on a non-provider: refused.
    for args in (
        ["user", "create", "drnone", "--role", "provider"],
        ["user", "create", "drbad", "--role", "provider", "--npi", "12345"],
        ["user", "create", "drtwin", "--role", "provider", "--npi", "1245319599"],
        ["user", "create", "codr", "--role", "coder", "--npi", "1234567893"],
    ):
        r = runner.invoke(cli, args, input="\n")
        assert r.exit_code == 1, (args, r.output)
    with pytest.raises(AppError):
        make_user("drnone2", "provider")


def test_our_json_form_takes_providers(make_client):
    from tests.support.factories import encounter_data

    data = encounter_data(providers=[{"npi": "1245319599", "name": "Dr. Ada Whitlock"}])
    ingest = make_client()
    ingest.headers["Authorization"] = f"Bearer {make_token('ie', 'ingest')}"
    body = json.loads(data.model_dump_json(by_alias=True))
    assert ingest.post("/api/v1/encounters", json=body).status_code == 200
    bad = {**body, "external_id": "other", "providers": [{"npi": "12AB", "name": "x"}]}
    r = ingest.post("/api/v1/encounters", json=bad)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"][:2] == ["providers", "0"]
    with Session(get_engine()) as session:
        stored = _providers(session, data.external_id)
    assert stored == [("1245319599", "Dr. Ada Whitlock", None)]


def test_an_admin_creates_a_provider_with_its_npi(make_client):
    from tests.support.factories import sign_in

    admin = make_client()
    sign_in(admin, make_user("root", "admin"))
    r = admin.post("/admin/users", data={"username": "drpage", "roles": ["provider"]})
    assert r.status_code == 422  # no NPI
    r = admin.post(
        "/admin/users", data={"username": "drpage", "roles": ["provider"], "npi": "1245319599"}
    )
    assert r.status_code == 200, r.text
    coder = make_user("cody", "coder")
    r = admin.post(f"/admin/users/{coder.user_id}/roles", data={"roles": ["coder", "provider"]})
    assert r.status_code == 422  # a provider role without an NPI link would see nothing
    with Session(get_engine()) as session:
        user = session.exec(select(User).where(User.username == "drpage")).one()
        link = session.get(ProviderAccount, user.id)
        assert link is not None
        assert link.npi == "1245319599"
