"""The audit hash chain: sealing, tamper evidence, append-only tables, concurrent writers.

Tampering is done as the database superuser (PostgreSQL: the `postgres` role with the
append-only triggers disabled; SQLite: the file opened directly with its triggers dropped).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from server.audit import chain
from server.audit import service as audit_service
from server.auth.principal import Principal
from server.config import get_settings
from server.db import get_engine, session_scope
from server.models.base import utcnow

AUDIT_TABLES = ("audit_event", "audit_seal", "audit_checkpoint")


def _write_events(n: int, *, actor: str = "alice", action: str = "claim") -> list[int]:
    ids = []
    with session_scope() as session:
        for i in range(n):
            ids.append(
                audit_service.record(
                    session,
                    actor=Principal(name=actor, kind="user", roles=frozenset({"coder"})),
                    action=audit_service.Action(action),
                    work_item_id=i + 1,
                )
            )
    return ids


@contextmanager
def superuser(db_url: str) -> Iterator[Callable[[str, tuple[Any, ...]], None]]:
    """Run raw SQL as the database superuser with the append-only triggers out of the way."""
    get_engine().dispose()
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit_%'"
        ).fetchall():
            conn.execute(f"DROP TRIGGER {name}")

        def run_sqlite(sql: str, params: tuple[Any, ...] = ()) -> None:
            conn.execute(sql.replace("%s", "?"), params)

        yield run_sqlite
        conn.commit()
        conn.close()
        return
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as pg:
        for table in AUDIT_TABLES:
            pg.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")

        def run_pg(sql: str, params: tuple[Any, ...] = ()) -> None:
            pg.execute(sql, params)  # type: ignore[arg-type]

        yield run_pg
        pg.commit()


def _sealed(n: int) -> list[int]:
    ids = _write_events(n)
    result = chain.seal_pending(checkpoint=True)
    assert result.sealed == n
    assert result.checkpoint_seq == n
    return ids


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def jobs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Verify's processes; ranges of 3 links, so a few events make several ranges."""
    monkeypatch.setattr(chain, "RANGE", 3)
    return int(request.param)


def test_untouched_log_verifies(db_url: str, jobs: int) -> None:
    ids = _sealed(12)
    report = chain.verify(jobs=jobs)
    assert report.ok, report.first_bad
    assert report.events_checked == len(ids)
    assert report.checkpoints_checked == 1
    assert report.first_bad is None


def test_sealing_continues_the_chain_across_rounds(db_url: str) -> None:
    _sealed(3)
    _write_events(4)
    assert chain.seal_pending().sealed == 4
    assert chain.seal_pending().sealed == 0
    with get_engine().connect() as conn:
        seqs = conn.execute(text("SELECT seq FROM audit_seal ORDER BY seq")).scalars().all()
    assert seqs == list(range(1, 8))
    assert chain.verify().ok


def _swap(run: Callable[[str, tuple[Any, ...]], None], a: int, b: int) -> None:
    run("UPDATE audit_seal SET event_id = -1 WHERE event_id = %s", (a,))
    run("UPDATE audit_seal SET event_id = %s WHERE event_id = %s", (a, b))
    run("UPDATE audit_seal SET event_id = %s WHERE event_id = -1", (b,))


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "bad_event", "reason"),
    [
        ("change", 5, 4, "altered"),
        ("delete", 5, 4, "deleted"),
        ("swap", 4, 6, "altered or out of order"),
        ("delete-seal", 5, None, "missing"),
    ],
)
def test_tampering_is_caught_at_the_first_bad_event(
    db_url: str, tamper: str, bad_seq: int, bad_event: int | None, reason: str, jobs: int
) -> None:
    ids = _sealed(10)
    with superuser(db_url) as run:
        if tamper == "change":
            run("UPDATE audit_event SET actor = 'mallory' WHERE id = %s", (ids[4],))
        elif tamper == "delete":
            run("DELETE FROM audit_event WHERE id = %s", (ids[4],))
        elif tamper == "swap":
            _swap(run, ids[3], ids[6])
        else:
            run("DELETE FROM audit_seal WHERE seq = 5", ())
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad["seq"] == bad_seq
    expected_event = None if bad_event is None else ids[bad_event]
    assert report.first_bad["event_id"] == expected_event
    assert reason in report.first_bad["reason"]


def test_a_forged_row_inserted_into_the_chain_is_named(db_url: str, jobs: int) -> None:
    ids = _sealed(8)
    forged_id = ids[-1] + 1000
    with superuser(db_url) as run:
        run(
            "INSERT INTO audit_event (id, time, action, outcome, actor, actor_kind, actor_roles) "
            "VALUES (%s, '2026-01-01 00:00:00', 'view-record', 'success', 'bob', 'user', 'coder')",
            (forged_id,),
        )
        # Make room at seq 5 and chain the forged event in with a correct hash.
        run("UPDATE audit_seal SET seq = seq + 1000 WHERE seq >= 5", ())
        run("UPDATE audit_seal SET seq = seq - 999 WHERE seq >= 1000", ())
    with get_engine().connect() as conn:
        prev = conn.execute(text("SELECT hash FROM audit_seal WHERE seq = 4")).scalar_one()
        row = chain.event_values(conn, forged_id)
    forged_hash = chain.link(bytes.fromhex(prev), row).hex()
    with superuser(db_url) as run:
        run(
            "INSERT INTO audit_seal (seq, event_id, event_txid, hash, sealed_at) "
            "VALUES (5, %s, 0, %s, '2026-01-01 00:00:00')",
            (forged_id, forged_hash),
        )
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad == {
        "seq": 5,
        "event_id": forged_id,
        "reason": "event inserted into the chain",
    }


def test_an_unchained_event_slipped_in_behind_the_sealer_is_named(db_url: str) -> None:
    """A row written into the past (below the sealer's watermark) is never chained."""
    _sealed(6)
    with superuser(db_url) as run:
        columns, values = (
            "id, time, action, outcome, actor, actor_kind, actor_roles",
            ("0, '2026-01-01 00:00:00', 'view-record', 'success', 'bob', 'user', 'coder'"),
        )
        if not db_url.startswith("sqlite"):
            columns, values = columns + ", txid", values + ", '3'"
        run(f"INSERT INTO audit_event ({columns}) VALUES ({values})", ())  # noqa: S608
    _write_events(1)
    assert chain.seal_pending().sealed == 1  # the new event, not the forged one
    report = chain.verify()
    assert not report.ok
    assert report.events_checked == 7
    assert report.first_bad == {
        "seq": None,
        "event_id": 0,
        "reason": "event written behind the sealer (not chained)",
    }


def test_a_chain_rewritten_with_fresh_hashes_is_caught_by_its_signed_checkpoint(
    db_url: str, jobs: int
) -> None:
    """Change an event and recompute every later hash: each link checks, the checkpoint
    signed over the old head does not."""
    ids = _sealed(10)
    with superuser(db_url) as run:
        run("UPDATE audit_event SET detail = 'rewritten' WHERE id = %s", (ids[4],))
    with get_engine().connect() as conn:
        prev = bytes.fromhex(
            conn.execute(text("SELECT hash FROM audit_seal WHERE seq = 4")).scalar_one()
        )
        hashes = {}
        for seq, event_id in zip(range(5, 11), ids[4:], strict=True):
            prev = chain.link(prev, chain.event_values(conn, event_id))
            hashes[seq] = prev.hex()
    with superuser(db_url) as run:
        for seq, value in hashes.items():
            run("UPDATE audit_seal SET hash = %s WHERE seq = %s", (value, seq))
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad is not None
    assert "chain differs from the checkpoint signed at seq 10" in report.first_bad["reason"]
    assert report.first_bad["seq"] == 1  # no earlier checkpoint vouches for any part of it


def test_a_cut_off_tail_is_caught_by_the_checkpoint_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    file = tmp_path / "checkpoints.jsonl"
    monkeypatch.setenv("CHARTDESK_AUDIT_CHECKPOINT_FILE", str(file))
    get_settings.cache_clear()
    ids = _sealed(10)
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [10]
    # The superuser removes the last three events, their seals, and every checkpoint row.
    with superuser(db_url) as run:
        for event_id in ids[7:]:
            run("DELETE FROM audit_event WHERE id = %s", (event_id,))
        run("DELETE FROM audit_seal WHERE seq > 7", ())
        run("DELETE FROM audit_checkpoint", ())
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad["seq"] == 8
    assert "cut off" in report.first_bad["reason"]
    assert "file" in report.first_bad["reason"]
    assert report.events_checked == 7


def test_a_forged_checkpoint_signature_is_caught(db_url: str) -> None:
    _sealed(4)
    with superuser(db_url) as run:
        run("UPDATE audit_checkpoint SET head_hash = %s", ("00" * 32,))
    report = chain.verify()
    assert not report.ok
    assert report.first_bad is not None
    assert "bad signature" in report.first_bad["reason"]


def test_cli_verify_exits_0_when_intact_and_1_naming_the_first_bad_event(db_url: str) -> None:
    from server.cli import app

    ids = _write_events(5)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "intact: 5 events" in ok.output
    with superuser(db_url) as run:
        run("UPDATE audit_event SET work_item_id = 99 WHERE id = %s", (ids[2],))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"seq 3 (event {ids[2]})" in broken.output
    # Both runs were themselves audited.
    with get_engine().connect() as conn:
        outcomes = conn.execute(
            text("SELECT outcome FROM audit_event WHERE action = 'audit-verify'")
        ).scalars()
        assert sorted(outcomes) == ["failed", "success"]


@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_the_app_cannot_update_or_delete_audit_rows(db_url: str, table: str) -> None:
    _sealed(2)
    update = (
        "UPDATE audit_event SET actor = 'x'"
        if table == "audit_event"
        else f"UPDATE {table} SET seq = seq"  # noqa: S608 - fixed table names
    )
    for sql in (update, f"DELETE FROM {table}"):  # noqa: S608
        with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
            conn.execute(text(sql))
    if get_engine().dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as conn:
            conn.execute(text(f"TRUNCATE {table}"))
    assert chain.verify().ok


APP_ROLE_GRANTS = """
CREATE ROLE chartdesk_app LOGIN;
GRANT USAGE ON SCHEMA public TO chartdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chartdesk_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO chartdesk_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_event, audit_seal, audit_checkpoint FROM chartdesk_app;
"""


@pytest.mark.pg_only
def test_postgres_app_role_is_refused_update_delete_truncate(db_url: str) -> None:
    """README's two-role setup: the app role may only SELECT and INSERT audit rows."""
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS chartdesk_app")
        for statement in filter(str.strip, APP_ROLE_GRANTS.split(";")):
            owner.execute(statement)  # type: ignore[arg-type]
        # Even with the triggers off, the grants alone refuse the app role.
        for table in AUDIT_TABLES:
            owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")  # type: ignore[arg-type]
    app_dsn = dsn.replace("postgres@", "chartdesk_app@")
    try:
        with psycopg.connect(app_dsn, autocommit=True) as app_conn:
            app_conn.execute(
                "INSERT INTO audit_event (time, action, outcome, actor_kind, actor_roles) "
                "VALUES (now(), 'claim', 'success', 'user', '')"
            )
            for table in AUDIT_TABLES:
                app_conn.execute(f"SELECT count(*) FROM {table}")  # type: ignore[arg-type]  # noqa: S608
                update = (
                    "UPDATE audit_event SET actor = 'x'"
                    if table == "audit_event"
                    else f"UPDATE {table} SET seq = seq"  # noqa: S608
                )
                for sql in (update, f"DELETE FROM {table}", f"TRUNCATE {table}"):  # noqa: S608
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        app_conn.execute(sql)  # type: ignore[arg-type]
            # The sealer works under the app role: it only inserts.
        app_url = db_url.replace("postgres@", "chartdesk_app@")
        from server.db import build_engine

        engine = build_engine(app_url)
        try:
            assert chain.seal_pending(engine=engine, checkpoint=True).sealed == 1
            assert chain.verify(engine=engine).ok
        finally:
            engine.dispose()
    finally:
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute("REASSIGN OWNED BY chartdesk_app TO postgres")
            owner.execute("DROP OWNED BY chartdesk_app")
            owner.execute("DROP ROLE chartdesk_app")


@pytest.mark.pg_only
def test_an_open_transaction_holds_back_sealing_without_blocking_anyone(db_url: str) -> None:
    """Events of later transactions wait until every earlier one has ended: none is lost."""
    _write_events(2)
    with session_scope() as slow:
        audit_service.record(
            slow, actor=Principal(name="slow", kind="user"), action=audit_service.Action.hold
        )
        # Committed while `slow` is still open: a later txid than slow's.
        later = _write_events(3, actor="fast")
        result = chain.seal_pending()
        assert result.sealed == 2  # only what was finished before `slow` began writing
        assert later  # the writers were never blocked
    assert chain.seal_pending().sealed == 4
    report = chain.verify()
    assert report.ok
    assert report.events_checked == 6
    assert report.unsealed == 0


WRITER = """
import sys, threading
from server.audit import service as audit_service
from server.auth.principal import Principal
from server.db import session_scope

tag, threads, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def work(t):
    for i in range(per):
        with session_scope() as s:
            audit_service.record(s, actor=Principal(name=f"{tag}-{t}", kind="user"),
                                 action=audit_service.Action.claim, work_item_id=i)

ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
"""


def test_sixteen_threads_in_two_processes_then_a_gapless_chain(db_url: str) -> None:
    """Appends from 2 processes x 8 threads while sealers run: every event sealed once."""
    per = 15
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_sealing() -> None:
        while not stop.wait(0.01):
            try:
                chain.seal_pending()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    sealers = [threading.Thread(target=keep_sealing) for _ in range(2)]
    for s in sealers:
        s.start()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, f"p{n}", "8", str(per)],
            cwd=Path(__file__).resolve().parent.parent,
        )
        for n in range(2)
    ]
    try:
        assert [p.wait(timeout=300) for p in procs] == [0, 0]
    finally:
        stop.set()
        for s in sealers:
            s.join()
    assert not errors, errors
    chain.seal_pending(wait=True)
    with get_engine().connect() as conn:
        events = conn.execute(text("SELECT id FROM audit_event")).scalars().all()
        seals = conn.execute(text("SELECT seq, event_id FROM audit_seal ORDER BY seq")).all()
    assert len(events) == 2 * 8 * per
    assert [s[0] for s in seals] == list(range(1, len(events) + 1))
    assert sorted(s[1] for s in seals) == sorted(events)
    report = chain.verify()
    assert report.ok
    assert report.events_checked == len(events)


def test_background_sealer_seals_and_stops(db_url: str) -> None:
    sealer = chain.BackgroundSealer(0.05)
    sealer.start()
    try:
        _write_events(3)
        deadline = threading.Event()
        for _ in range(200):
            if chain.verify().events_checked == 3:
                break
            deadline.wait(0.05)
    finally:
        sealer.stop()
    assert chain.verify().events_checked == 3
    assert sealer._thread is None


def test_checkpoints_every_n_events_or_t_seconds_even_when_idle(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARTDESK_AUDIT_CHECKPOINT_EVENTS", "4")
    monkeypatch.setenv("CHARTDESK_AUDIT_CHECKPOINT_SECONDS", "1")
    get_settings.cache_clear()
    _write_events(3)
    assert chain.seal_pending().checkpoint_seq == 3  # the first checkpoint at once
    _write_events(2)
    result = chain.seal_pending()
    assert result.sealed == 2
    assert result.checkpoint_seq is None  # 2 < 4 events and under a second
    _write_events(4)
    assert chain.seal_pending().checkpoint_seq == 9  # 4 events since the last one
    _write_events(1)
    assert chain.seal_pending().checkpoint_seq is None
    threading.Event().wait(1.1)
    idle = chain.seal_pending()  # nothing new to seal, but the head is unsigned
    assert idle.sealed == 0
    assert idle.checkpoint_seq == 10
    assert chain.seal_pending().checkpoint_seq is None
    report = chain.verify()
    assert report.ok
    assert report.checkpoints_checked == 3


def test_an_empty_checkpoint_file_setting_means_unset(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`CHARTDESK_AUDIT_CHECKPOINT_FILE=` was taken as "." and verify crashed
    (IsADirectoryError)."""
    from server.cli import app

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CHARTDESK_AUDIT_CHECKPOINT_FILE", "")
    get_settings.cache_clear()
    assert get_settings().audit_checkpoint_file is None
    _sealed(3)
    out = CliRunner().invoke(app, ["audit", "verify"])
    assert out.exit_code == 0, out.output
    assert "intact: 3 events, 1 signed checkpoints" in out.output
    assert list(cwd.iterdir()) == []


@contextmanager
def app_role(db_url: str) -> Iterator[str]:
    """README's application role (SELECT and INSERT on the audit tables); yields its DSN."""
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS chartdesk_app")
        for statement in filter(str.strip, APP_ROLE_GRANTS.split(";")):
            owner.execute(statement)  # type: ignore[arg-type]
    try:
        yield dsn.replace("postgres@", "chartdesk_app@")
    finally:
        with psycopg.connect(dsn, autocommit=True) as owner:
            owner.execute("REASSIGN OWNED BY chartdesk_app TO postgres")
            owner.execute("DROP OWNED BY chartdesk_app")
            owner.execute("DROP ROLE chartdesk_app")


@pytest.mark.pg_only
def test_the_app_role_cannot_back_date_an_event_or_give_it_an_old_txid(db_url: str) -> None:
    """The red team's forgery: as the app's own role, INSERT an event dated three days ago
    (and with an old transaction id). The database stamps its own clock and txid."""
    _sealed(2)
    with app_role(db_url) as app_dsn, psycopg.connect(app_dsn, autocommit=True) as app_conn:
        forged = app_conn.execute(
            "INSERT INTO audit_event (time, txid, action, outcome, actor, actor_kind, "
            "actor_roles) VALUES (now() - interval '3 days', '3', 'view-record', 'success', "
            "'mallory', 'user', 'coder') RETURNING id, time, now() - time, txid::text"
        ).fetchone()
        assert forged is not None
        assert abs(forged[2].total_seconds()) < 60, "stored at the database's clock"
        assert int(forged[3]) > 3
        # ...and it cannot switch the stamp off.
        for sql in (
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_stamp",
            "DROP TRIGGER audit_event_stamp ON audit_event",
            "CREATE OR REPLACE FUNCTION audit_event_stamp() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "SET session_replication_role = replica",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app_conn.execute(sql)  # type: ignore[arg-type]
    assert chain.seal_pending(checkpoint=True).sealed == 1
    report = chain.verify()
    assert report.ok, report.first_bad  # the event is honest now: it says when it was written
    assert report.events_checked == 3


def test_a_back_dated_event_sealed_after_a_checkpoint_is_reported(db_url: str, jobs: int) -> None:
    """The superuser (or anyone on SQLite) bypasses the stamp and writes an event dated
    three days back; the sealer chains it like any other. Its time falls before the
    checkpoint signed before its sealing: verify names it."""
    ids = _sealed(4)
    with superuser(db_url) as run:
        run(
            "INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles) "
            "VALUES (%s, 'view-record', 'success', 'mallory', 'user', 'coder')",
            (utcnow() - timedelta(days=3),),
        )
    _write_events(2)
    assert chain.seal_pending(checkpoint=True).sealed == 3
    with get_engine().connect() as conn:
        forged = conn.execute(
            text("SELECT id FROM audit_event WHERE actor = 'mallory'")
        ).scalar_one()
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad["seq"] == 5
    assert report.first_bad["event_id"] == forged
    assert "before the checkpoint signed at seq 4" in report.first_bad["reason"]
    assert "back-dated" in report.first_bad["reason"]
    assert report.events_checked == len(ids)
    runner = CliRunner()
    from server.cli import app

    out = runner.invoke(app, ["audit", "verify"])
    assert out.exit_code == 1
    assert f"BROKEN at seq 5 (event {forged})" in out.output


def test_an_event_a_little_older_than_the_checkpoint_is_within_the_slack(db_url: str) -> None:
    """A transaction open across a checkpoint honestly writes an event older than it."""
    _sealed(2)
    with superuser(db_url) as run:
        run(
            "INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles) "
            "VALUES (%s, 'claim', 'success', 'slow', 'user', 'coder')",
            (utcnow() - timedelta(seconds=30),),
        )
    chain.seal_pending(checkpoint=True)
    assert chain.verify().ok


@pytest.mark.pg_only
def test_a_sealed_events_changed_transaction_id_is_reported(db_url: str, jobs: int) -> None:
    ids = _sealed(6)
    with superuser(db_url) as run:
        run("UPDATE audit_event SET txid = '3' WHERE id = %s", (ids[3],))
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad is not None
    assert report.first_bad["seq"] == 4
    assert report.first_bad["event_id"] == ids[3]
    assert "transaction id changed" in report.first_bad["reason"]


def test_a_deleted_checkpoint_row_is_caught_by_the_checkpoint_file(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.setenv("CHARTDESK_AUDIT_CHECKPOINT_FILE", str(tmp_path / "checkpoints.jsonl"))
    get_settings.cache_clear()
    _sealed(4)
    _write_events(3)
    assert chain.seal_pending(checkpoint=True).checkpoint_seq == 7
    assert chain.verify(jobs=jobs).ok
    with superuser(db_url) as run:
        run("DELETE FROM audit_checkpoint WHERE seq = 4", ())
    report = chain.verify(jobs=jobs)
    assert not report.ok
    assert report.first_bad == {
        "seq": 4,
        "event_id": None,
        "reason": "the checkpoint signed at seq 4 is in the checkpoint file but missing "
        "from the database: deleted",
    }


@pytest.mark.pg_only
def test_postgres_verify_reproduces_awkward_events_without_the_slow_walk(
    db_url: str, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path renders each event's canonical bytes in SQL: quotes, backslashes,
    control characters, non-ASCII text, NULLs and a time on a whole second must come out
    byte for byte as `chain.canonical` wrote them when sealing, or verify would fall back
    to walking the chain (slow) on every intact log."""
    awkward = ['a "quoted" \\ path', "tab\there\nnewline\x01\x1f", "café — ü 漢字 \u2028", None]
    for half in (awkward[:2], awkward[2:]):  # two rounds: a signed checkpoint between them
        with session_scope() as session:
            for i, detail in enumerate(half):
                audit_service.record(
                    session,
                    actor=Principal(
                        name=f"o'brien {i}",
                        kind="user",
                        roles=frozenset({"coder"}),
                        user_agent=detail,
                    ),
                    action=audit_service.Action.claim,
                    detail=detail,
                    patient_id=i or None,
                )
        if detail is None:  # one event on a whole second: isoformat drops the .000000
            with superuser(db_url) as run:
                run("UPDATE audit_event SET time = date_trunc('second', time) WHERE detail IS NULL")
        assert chain.seal_pending(checkpoint=True).sealed == len(half)

    def no_walk(*_args: Any) -> int:
        raise AssertionError("verify fell back to the walk on an intact chain")

    monkeypatch.setattr(chain, "_walk", no_walk)
    report = chain.verify(jobs=jobs)
    assert report.ok, report.first_bad
    assert report.events_checked == len(awkward)
