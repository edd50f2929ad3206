"""Shell: `keys rotate` (re-wrap, resumable), `records purge` (crypto-shredding), `import`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from server.cli import app as cli
from server.db import get_engine, session_scope
from server.keyring import add_kek, load_keyring
from server.models import AuditEvent, DataKey, Encounter, Status, WorkItem, WorkItemEvent
from server.records import keys as records_keys
from server.records import service as records_service
from tests.support.factories import SAMPLE_NOTE, actor_of, encounter_data, make_encounter, make_user
from tests.support.records import fixture_files

runner = CliRunner()


def _billable(item_ids: list[int], status: str = Status.ready_for_billing) -> None:
    with Session(get_engine()) as s:
        for item_id in item_ids:
            item = s.get(WorkItem, item_id)
            item.status = status
            s.add(item)
        s.commit()


def _read(actor, item_id: int):
    with session_scope() as s:
        return records_service.open_record(
            session=s, actor=actor, work_item_id=item_id, purpose="HPAYMT", view="billing"
        ).record


def _keks() -> list[str]:
    with Session(get_engine()) as s:
        return [k.kek_id for k in s.exec(select(DataKey).order_by(DataKey.id))]


def test_rotate_rewraps_every_data_key_and_records_still_open(db_url):
    items = [make_encounter() for _ in range(3)]
    biller = actor_of(make_user("bill", "biller"), "biller")
    _billable(items)
    old = load_keyring().primary_kek_id
    assert set(_keks()) == {old}
    result = runner.invoke(cli, ["keys", "rotate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    ring = load_keyring()
    assert ring.primary_kek_id != old
    assert old in ring.kek_ids  # the old KEK is kept
    assert set(_keks()) == {ring.primary_kek_id}
    assert "re-wrapped 3 data keys" in result.output
    for item_id in items:
        assert SAMPLE_NOTE in _read(biller, item_id).documents[0].text
    with Session(get_engine()) as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.action == "key-rotate")).all()
    assert "rewrapped=3" in event.detail


def test_an_interrupted_rotation_resumes_and_old_keys_keep_opening(db_url):
    items = [make_encounter() for _ in range(3)]
    biller = actor_of(make_user("bill", "biller"), "biller")
    _billable(items)
    old = load_keyring().primary_kek_id
    new = add_kek()  # rotation started...
    with session_scope() as s:
        assert records_keys.rewrap_batch(s, limit=1) == 1  # ...and stopped after one key
    assert sorted(_keks()) == sorted([new, old, old])
    for item_id in items:  # both generations open mid-rotation
        assert _read(biller, item_id).patient.name
    result = runner.invoke(cli, ["keys", "rotate", "--resume"])
    assert result.exit_code == 0, result.output
    assert set(_keks()) == {new}
    assert load_keyring().kek_ids == sorted([old, new])  # --resume added no key
    for item_id in items:
        assert _read(biller, item_id).patient.name


def _billed(item_id: int, at: datetime) -> None:
    with Session(get_engine()) as s:
        item = s.get(WorkItem, item_id)
        item.status = Status.billed
        s.add(item)
        s.add(
            WorkItemEvent(
                work_item_id=item_id,
                action="billed",
                at=at,
                from_status=Status.ready_for_billing,
                to_status=Status.billed,
            )
        )
        s.commit()


def test_purge_shreds_billed_encounters_before_the_date(db_url, client):
    old, recent, waiting = make_encounter(), make_encounter(), make_encounter()
    biller = actor_of(make_user("bill", "biller"), "biller")
    _billed(old, datetime(2026, 1, 10, tzinfo=UTC))
    _billed(recent, datetime(2026, 9, 1, tzinfo=UTC))
    result = runner.invoke(cli, ["records", "purge", "--billed-before", "2026-06-01"])
    assert result.exit_code == 0, result.output
    assert "purged 1 encounters" in result.output
    with pytest.raises(records_service.crypto.RecordPurged) as caught:
        _read(biller, old)
    assert caught.value.status_code == 410
    assert "purged" in caught.value.message
    assert _read(biller, recent).patient.name
    with Session(get_engine()) as s:
        enc = s.exec(
            select(Encounter)
            .join(WorkItem, WorkItem.encounter_id == Encounter.id)
            .where(WorkItem.id == old)
        ).one()
        dk = s.get(DataKey, enc.data_key_id)
        assert dk.wrapped is None
        assert dk.destroyed_at is not None
        assert enc.external_id.startswith("ENC-")  # metadata stays
        purges = s.exec(select(AuditEvent).where(AuditEvent.action == "purge")).all()
        failed = s.exec(
            select(AuditEvent).where(
                AuditEvent.action == "view-record", AuditEvent.outcome == "failed"
            )
        ).all()
    assert [e.work_item_id for e in purges] == [old]
    assert set(_keks()) == {load_keyring().primary_kek_id}  # recent and waiting keep keys
    _billable([waiting])
    assert _read(biller, waiting).patient.name
    assert [e.work_item_id for e in failed] == [old]
    # Rotation skips shredded keys; a second purge finds nothing.
    assert runner.invoke(cli, ["keys", "rotate"]).exit_code == 0
    result = runner.invoke(cli, ["records", "purge", "--billed-before", "2026-06-01"])
    assert "purged 0 encounters" in result.output
    assert runner.invoke(cli, ["records", "purge", "--billed-before", "June"]).exit_code != 0


def test_import_files_and_folders(db_url, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    small = next(p for p in fixture_files() if p.name.startswith("conchita"))
    shutil.copy(small, folder / small.name)
    broken = json.loads(small.read_text())
    enc = next(e for e in broken["entry"] if e["resource"]["resourceType"] == "Encounter")
    del enc["resource"]["subject"]
    (folder / "broken.json").write_text(json.dumps(broken))
    ours = encounter_data().model_dump(mode="json", by_alias=True)
    lines = tmp_path / "feed.ndjson"
    lines.write_text(json.dumps(ours) + "\n{not json\n")
    (folder / "ignored.txt").write_text("not for us")

    result = runner.invoke(cli, ["import", str(folder), str(lines)])
    assert result.exit_code == 1, result.output
    assert "created 8, duplicates 0, rejected 2" in result.output
    assert "broken.json" in result.output
    assert "entry.1.resource.subject" in result.output or "subject" in result.output
    assert f"{lines}:2: not valid JSON" in result.output

    result = runner.invoke(cli, ["import", str(folder / small.name)])
    assert result.exit_code == 0, result.output
    assert "created 0, duplicates 7, rejected 0" in result.output
    with Session(get_engine()) as s:
        assert len(s.exec(select(WorkItem)).all()) == 8
    assert runner.invoke(cli, ["import", str(tmp_path / "missing")]).exit_code == 1


def test_rotate_moves_data_keys_to_kms(db_url, keyring, monkeypatch):
    """With CHARTDESK_KMS_KEY_ID set, `keys rotate` re-wraps every data key through KMS."""
    import boto3
    from moto.server import ThreadedMotoServer

    from server.config import get_settings
    from tests.support.pgcluster import free_port

    items = [make_encounter() for _ in range(2)]
    biller = actor_of(make_user("bill", "biller"), "biller")
    _billable(items)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("CHARTDESK_KMS_ENDPOINT_URL", url)
        kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1")
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        monkeypatch.setenv("CHARTDESK_KMS_KEY_ID", key_id)
        get_settings.cache_clear()
        keyring.touch()
        result = runner.invoke(cli, ["keys", "rotate"])
        assert result.exit_code == 0, result.output
        assert set(_keks()) == {f"kms:{key_id}"}
        for item_id in items:
            assert SAMPLE_NOTE in _read(biller, item_id).documents[0].text
    finally:
        server.stop()
        get_settings.cache_clear()
