"""Loading the benchmark database: audit history, its hash chain, users and real encounters.

Runs in the bench process against the throwaway database (CHARTDESK_* variables set by
run.py before anything reads the settings), through the real services where the data must
be real: users through `auth.service.create_user`, encounters through the records service
(`tests.support.factories.make_encounter`: envelope-encrypted, blind-indexed, audited), the tail of
the audit history through the real sealer (`chain.seal_pending`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

ACTIONS = (
    "('{view-record,view-record,view-record,claim,release,code-save,submit,"
    "view-record,claim,sign-in}'::text[])"
)
PASSWORD = "bench horse battery staple"  # noqa: S105 - throwaway benchmark accounts
NOTE = (
    "# History of present illness\n"
    "Patient reports three days of productive cough and low-grade fever after a camping trip. "
    "Denies chest pain, reports mild dyspnoea on exertion. Smoker, 20 pack-years, quit 2019. "
    "Took over-the-counter guaifenesin without relief. No sick contacts at home.\n"
    "# Examination\nT 38.1 C, HR 96, BP 132/84, SpO2 95% on room air. Scattered rhonchi over "
    "both lower lobes, no dullness to percussion. No peripheral oedema.\n"
    "# Assessment and plan\nAcute bronchitis; community-acquired pneumonia not excluded. "
    "Chest X-ray ordered, CBC and CRP. Start amoxicillin 500 mg three times daily for five "
    "days if the X-ray shows consolidation; otherwise supportive care and review in 48 hours.\n"
)


@dataclass
class Loaded:
    """What the loader made, for the measurements."""

    coders: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)
    null_readers: list[str] = field(default_factory=list)
    auditor: str = "auditor"
    patient_mrns: list[tuple[int, str]] = field(default_factory=list)  # (patient id, MRN)
    bench_queue_id: int = 0
    chained_by_loader: int = 0
    chain_secs: float = 0.0
    sealed_by_sealer: int = 0
    seal_secs: float = 0.0
    secrets: dict[str, str] = field(default_factory=dict)  # username -> TOTP secret


def insert_events(
    dsn: str, *, first: int, count: int, total: int, items: int, recent: bool = False
) -> None:
    """Append generated audit events `first`..`first+count-1` of `total`, 1M per transaction.

    Spread evenly over the twelve months of 2025 (`recent`: the 365 days up to now), 500
    actors (`coder000`..`coder499`, the same names as the bench's coders), patients
    1..items, realistic widths for every column.
    Each chunk is its own transaction, so each has its own txid, as the sealer expects.
    """
    step = 365 * 86400 / total
    chunk = 1_000_000
    origin = "now() - interval '365 days'" if recent else "timestamptz '2025-01-01 00:00:00+00'"
    with psycopg.connect(dsn, autocommit=True) as c:
        # Bulk load: the table's secondary indexes are dropped and built again afterwards
        # with their own definitions (much faster than updating them row by row).
        indexes = c.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'audit_event' "
            "AND i.indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
        # A year of history: the database stamps each new event with its own clock and
        # txid (migration 0007), so the loader, as the superuser, turns triggers off.
        c.execute("SET session_replication_role = replica")
        if count >= chunk:
            for name, _ in indexes:
                c.execute(f'DROP INDEX "{name}"')
        for lo in range(first, first + count, chunk):
            hi = min(first + count, lo + chunk) - 1
            c.execute(
                "INSERT INTO audit_event (time, action, outcome, actor, actor_kind, actor_roles, "  # noqa: S608
                "patient_id, mrn_index, work_item_id, source_ip, user_agent, request_id, "
                "purpose, detail) "
                f"SELECT {origin} + g * %(step)s * interval '1 second', "
                f"{ACTIONS}[1 + g %% 10], "
                "CASE WHEN g %% 97 = 0 THEN 'denied' ELSE 'success' END, "
                "'coder' || lpad((g %% 500)::text, 3, '0'), 'user', 'coder', "
                "1 + (g::bigint * 7919) %% %(items)s, NULL, 1 + (g::bigint * 31) %% %(items)s, "
                "'10.20.' || (g %% 250) || '.' || (g %% 199), "
                "'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0', "
                "md5(g::text), 'TREAT', NULL "
                "FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g",
                {"step": step, "items": items, "lo": lo, "hi": hi},
            )
        if count >= chunk:
            c.execute("SET maintenance_work_mem = '512MB'")
            for _, ddl in indexes:
                c.execute(ddl)


def chain_events(dsn: str) -> tuple[int, float]:
    """Seal every event present now with the real link function, written by COPY.

    Rows are read in id order (the loader writes them one transaction after another, so
    this is also the sealer's (txid, id) order) with a binary COPY and hashed with
    `chain.link`, the very function the sealer and `verify` use; only the reading and
    writing is done here with COPY instead of the sealer's batches, to load millions of
    rows in minutes. `verify` later recomputes all of it, so a mismatch would show up as a
    broken chain. Returns (events chained, seconds).
    """
    from server.audit.chain import CANONICAL_FIELDS, GENESIS, link

    text_cols = {"action", "outcome", "actor", "actor_kind", "actor_roles", "mrn_index"}
    text_cols |= {"source_ip", "user_agent", "request_id", "purpose", "detail"}
    cols, types = ["txid::text::int8"], ["int8"]
    for name in CANONICAL_FIELDS:
        if name in text_cols:
            cols.append(f"{name}::text")
            types.append("text")
        elif name == "time":
            cols.append(name)
            types.append("timestamptz")
        else:
            cols.append(f"{name}::int8")
            types.append("int8")
    t = time.perf_counter()
    prev, seq = GENESIS, 0
    with psycopg.connect(dsn) as read, psycopg.connect(dsn) as write:
        read.execute("SET TIME ZONE 'UTC'")
        with (
            read.cursor() as rcur,
            rcur.copy(
                f"COPY (SELECT {', '.join(cols)} FROM audit_event ORDER BY id) "  # noqa: S608
                "TO STDOUT (FORMAT BINARY)"
            ) as out,
            write.cursor() as wcur,
            wcur.copy(
                "COPY audit_seal (seq, event_id, event_txid, hash, sealed_at) FROM STDIN"
            ) as cp,
        ):
            out.set_types(types)
            for row in out.rows():
                seq += 1
                prev = link(prev, row[1:])
                cp.write_row((seq, row[1], row[0], prev.hex(), "now"))
        write.commit()
    return seq, time.perf_counter() - t


def make_users(*, coders: int, readers: int) -> Loaded:
    """Coders of queue `bench`, readers of `records` / `records-null`, one compliance officer."""
    from sqlmodel import Session

    from server.auth import service as auth_service
    from server.db import get_engine
    from server.queue import service as queue_service

    out = Loaded()
    with Session(get_engine()) as s:
        for name in ("bench", "records", "records-null"):
            queue_service.create_queue(s, name=name)
        s.commit()

        def user(name: str, role: str, queues: list[str]) -> None:
            made = auth_service.create_user(
                s, username=name, roles=[role], password=PASSWORD, queues=queues
            )
            assert made.user.totp_secret is not None  # noqa: S101
            out.secrets[name] = made.user.totp_secret
            s.commit()

        for i in range(coders):
            out.coders.append(f"coder{i:03d}")
            user(out.coders[-1], "coder", ["bench"])
        for i in range(readers):
            out.readers.append(f"reader{i:02d}")
            user(out.readers[-1], "coder", ["records"])
            out.null_readers.append(f"nreader{i:02d}")
            user(out.null_readers[-1], "coder", ["records-null"])
        user(out.auditor, "compliance", [])
    return out


def make_records(loaded: Loaded, *, real: int, null: int) -> None:
    """Real encrypted encounters in `records`; null-cipher ones in `records-null`.

    Through the records service (`tests.support.factories.make_encounter`): per-encounter data key,
    sealed patient, hints and three documents of about 1.3 kB each.
    """
    from sqlmodel import Session, select

    from server.config import get_settings
    from server.db import get_engine
    from server.models import Patient
    from server.records import service as records_service
    from tests.support.factories import encounter_data, make_encounter

    def one(queue: str) -> None:
        data = encounter_data()
        docs = [
            {"title": t, "type": "11506-3", "date": data.start, "text": NOTE}
            for t in ("Progress note", "Discharge summary", "Radiology report")
        ]
        make_encounter(
            queue=queue,
            external_id=data.external_id,
            patient=data.patient.model_dump(),
            documents=docs,
        )
        if queue == "records":
            loaded.patient_mrns.append((0, data.patient.mrn))

    for _ in range(real):
        one("records")
    with Session(get_engine()) as s:
        for i, (_, mrn) in enumerate(loaded.patient_mrns):
            found = s.exec(
                select(Patient.id).where(Patient.mrn_index == records_service.mrn_index(mrn))
            ).one()
            loaded.patient_mrns[i] = (int(found or 0), mrn)
    os.environ["CHARTDESK_BENCH_NULL_CIPHER"] = "1"
    get_settings.cache_clear()
    try:
        for _ in range(null):
            one("records-null")
    finally:
        del os.environ["CHARTDESK_BENCH_NULL_CIPHER"]
        get_settings.cache_clear()


def fill_claim_pool(dsn: str, loaded: Loaded, *, items: int) -> None:
    """`items` ready work items in queue `bench` (patients and encounters copied by SQL).

    Claims never open the record, so these encounters reuse a real encounter's sealed
    columns (they could not be opened: the associated data names the original row). The
    patient ids line up with the generated audit history (1..items).
    """
    with psycopg.connect(dsn, autocommit=True) as c:
        top = c.execute("SELECT coalesce(max(id), 0), count(*) FROM patient").fetchone()
        assert top is not None  # noqa: S101
        real_max, extra = top[0], max(0, items - top[1])

        def columns(table: str, skip: set[str]) -> list[str]:
            rows = c.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            ).fetchall()
            return [r[0] for r in rows if r[0] not in skip]

        pcols = columns("patient", {"id", "mrn_index"})
        c.execute(
            f"INSERT INTO patient (mrn_index, {', '.join(pcols)}) "  # noqa: S608
            f"SELECT md5('bench' || g), {', '.join('p.' + x for x in pcols)} "
            "FROM generate_series(1, %s) g, (SELECT * FROM patient ORDER BY id LIMIT 1) p",
            (extra,),
        )
        ecols = columns("encounter", {"id", "external_id", "patient_id"})
        c.execute(
            f"INSERT INTO encounter (external_id, patient_id, {', '.join(ecols)}) "  # noqa: S608
            f"SELECT 'BENCH-' || p.id, p.id, {', '.join('e.' + x for x in ecols)} "
            "FROM patient p, (SELECT * FROM encounter ORDER BY id LIMIT 1) e "
            "WHERE p.id > %s ORDER BY p.id",
            (real_max,),
        )
        row = c.execute("SELECT id FROM work_queue WHERE name = 'bench'").fetchone()
        assert row is not None  # noqa: S101
        loaded.bench_queue_id = row[0]
        c.execute(
            "INSERT INTO work_item (encounter_id, queue_id, status, priority, created_at, "
            "updated_at) SELECT e.id, %s, 'ready', e.id %% 3, now(), now() FROM encounter e "
            "WHERE e.external_id LIKE 'BENCH-%%'",
            (loaded.bench_queue_id,),
        )


def seal_rest() -> tuple[int, float]:
    """Seal everything not yet sealed with the real sealer; (events, seconds)."""
    from server.audit.chain import seal_pending

    t = time.perf_counter()
    result = seal_pending(wait=True, checkpoint=True)
    return result.sealed, time.perf_counter() - t


def reset_claim_pool(dsn: str, queue_id: int) -> None:
    """Put every item of the bench queue back to ready (between claim runs)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "UPDATE work_item SET status = 'ready', lease_owner_id = NULL, "
            "lease_expires_at = NULL, coded_by_id = NULL WHERE queue_id = %s "
            "AND status <> 'ready'",
            (queue_id,),
        )
        c.execute("VACUUM ANALYZE work_item")


def analyze(dsn: str) -> None:
    """VACUUM ANALYZE after the load (visibility map for index-only scans, fresh stats)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("VACUUM ANALYZE")


def scalar(dsn: str, sql: str, args: Any = None) -> Any:
    """One value from a query."""
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(sql, args).fetchone()
        return None if row is None else row[0]
