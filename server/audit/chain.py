"""The audit hash chain: sealing, signed checkpoints, verification, the background sealer.

Requests only INSERT events (no lock, no chain work in the request path). The sealer, run
by a thread in every app process and by `chartdesk audit verify`, takes the events whose
writing transaction is certainly finished, gives them the next sequence numbers and
hashes `h_n = SHA-256(h_{n-1} || canonical(event_n))` into the insert-only `audit_seal`
table, and every N events or T seconds signs a checkpoint (seq, head hash, time) with the
keyring's Ed25519 audit key, also appending it to CHARTDESK_AUDIT_CHECKPOINT_FILE.

Which events are "certainly finished":
- PostgreSQL: each event stores its transaction id (`txid`, xid8). Every transaction with
  an id below `pg_snapshot_xmin(pg_current_snapshot())` has ended, so events with
  `txid < xmin` that are visible now will never be joined by another event with a smaller
  txid. The sealer takes them in (txid, id) order, after the (txid, id) of the last seal.
  One sealer at a time: `pg_try_advisory_xact_lock` (other processes skip the round).
- SQLite: writers are serialised (`BEGIN IMMEDIATE`), so while the sealer holds the write
  lock every other transaction has committed or rolled back; it seals by id after the last
  sealed id.
An unsealed event below that watermark cannot come from the application: `verify` reports
it as written behind the sealer's back, and the sealer never chains it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, literal_column, select, text
from sqlalchemy.engine import Engine

from server.config import get_settings
from server.db import get_engine
from server.keyring import Keyring, load_keyring
from server.models.audit import AuditCheckpoint, AuditEvent, AuditSeal
from server.models.base import utcnow

log = logging.getLogger(__name__)

GENESIS = bytes(32)
SEAL_LOCK_KEY = 0x43445F4155444954  # "CD_AUDIT": one sealer at a time on PostgreSQL
BATCH = 5000

_EV = AuditEvent.__table__  # type: ignore[attr-defined]
_SEAL = AuditSeal.__table__  # type: ignore[attr-defined]
_CP = AuditCheckpoint.__table__  # type: ignore[attr-defined]
CANONICAL_FIELDS = (
    "id",
    "time",
    "action",
    "outcome",
    "actor",
    "actor_kind",
    "actor_roles",
    "patient_id",
    "mrn_index",
    "work_item_id",
    "source_ip",
    "user_agent",
    "request_id",
    "purpose",
    "detail",
)


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
N_FIELDS = len(CANONICAL_FIELDS)


def canonical(values: Sequence[Any]) -> bytes:
    """The bytes an event contributes to the chain: its CANONICAL_FIELDS values (in that
    order, time as ISO 8601 UTC) as compact JSON."""
    when = values[1]
    return _ENCODE([values[0], when.isoformat(), *values[2:N_FIELDS]]).encode()


def link(prev: bytes, values: Sequence[Any]) -> bytes:
    """h_n = SHA-256(h_{n-1} || canonical(event_n))."""
    return hashlib.sha256(prev + canonical(values)).digest()


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint of the audit public key (first 16 bytes of its SHA-256, hex)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def checkpoint_message(seq: int, head_hash: str, signed_at: datetime) -> bytes:
    """What a checkpoint signature covers."""
    return f"chartdesk-audit-checkpoint|{seq}|{head_hash}|{signed_at.isoformat()}".encode()


def _is_pg(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


_COLUMNS = ", ".join(CANONICAL_FIELDS)  # fixed names
# ORDER BY the table's columns, through the (txid, id) index: a bare `ORDER BY txid` named
# the bigint output column, so every batch sorted the whole backlog (1M pending events
# sealed at 5,500/s instead of ~20,000/s).
_PENDING_PG = text(
    f"SELECT {_COLUMNS}, txid::text::bigint AS event_txid FROM audit_event "  # noqa: S608  # nosec B608 - fixed column names
    "WHERE (txid, id) > (CAST(CAST(:t AS text) AS xid8), :i) "
    "AND txid < CAST(CAST(:h AS text) AS xid8) "
    "ORDER BY audit_event.txid, audit_event.id LIMIT :n"
)
_PENDING_SQLITE = text(
    f"SELECT {_COLUMNS}, 0 FROM audit_event WHERE id > :i ORDER BY id LIMIT :n"  # noqa: S608  # nosec B608 - fixed column names
)
_ONE_EVENT = text(
    f"SELECT {_COLUMNS} FROM audit_event WHERE id = :i"  # noqa: S608  # nosec B608 - fixed names
)


def _values(row: Sequence[Any], time_at: int) -> list[Any]:
    """A raw row with its timestamp made the aware UTC datetime `canonical` expects."""
    out = list(row)
    out[time_at] = _utc(out[time_at])
    return out


def event_values(conn: Connection, event_id: int) -> list[Any]:
    """One stored event's CANONICAL_FIELDS values, read as the sealer reads them."""
    return _values(conn.execute(_ONE_EVENT, {"i": event_id}).one(), 1)


# ---------------------------------------------------------------- sealing


@dataclass
class SealResult:
    """What one sealing run did."""

    sealed: int = 0
    head_seq: int = 0
    checkpoint_seq: int | None = None
    skipped: bool = False  # another process held the sealer lock


def seal_pending(
    *, engine: Engine | None = None, wait: bool = False, checkpoint: bool = False
) -> SealResult:
    """Seal every finished, unsealed event; sign a checkpoint when one is due.

    `wait`: queue behind another sealer instead of skipping the round (verify uses it).
    `checkpoint`: sign a checkpoint now if the head moved since the last one.
    """
    engine = engine or get_engine()
    result = SealResult()
    if not _sqlite_has_work(engine, force_checkpoint=checkpoint):
        return result
    while True:
        done, written = _seal_batch(engine, wait=wait, force_checkpoint=checkpoint)
        if done.skipped:
            result.skipped = True
            return result
        result.sealed += done.sealed
        result.head_seq = done.head_seq
        if done.checkpoint_seq is not None:
            result.checkpoint_seq = done.checkpoint_seq
        if written is not None:
            _append_checkpoint_file(written)
        if done.sealed < BATCH:
            return result


def _sqlite_has_work(engine: Engine, *, force_checkpoint: bool) -> bool:
    """On SQLite, look without the write lock whether a round has anything to do.

    Every SQLite transaction here starts with BEGIN IMMEDIATE (the one writer lock), so an
    idle sealer would otherwise take the lock twice a second. PostgreSQL rounds are cheap.
    """
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        last_event = cur.execute("SELECT max(id) FROM audit_event").fetchone()[0]
        head = cur.execute(
            "SELECT seq, event_id FROM audit_seal ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        checkpoint = cur.execute(
            "SELECT seq, signed_at FROM audit_checkpoint ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        cur.close()
    finally:
        raw.close()
    if last_event is None:
        return False
    if head is None or last_event > head[1]:
        return True
    if checkpoint is None or checkpoint[0] < head[0]:
        if force_checkpoint or checkpoint is None:
            return True
        signed = datetime.fromisoformat(str(checkpoint[1])).replace(tzinfo=UTC)
        return utcnow() - signed >= timedelta(seconds=get_settings().audit_checkpoint_seconds)
    return False


def _seal_batch(
    engine: Engine, *, wait: bool, force_checkpoint: bool
) -> tuple[SealResult, dict[str, Any] | None]:
    pg = _is_pg(engine)
    result = SealResult()
    written: dict[str, Any] | None = None
    with engine.connect() as conn, conn.begin():
        horizon: int | None = None
        if pg:
            if wait:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK_KEY})
            elif not conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SEAL_LOCK_KEY}
            ).scalar():
                result.skipped = True
                return result, None
            horizon = int(
                conn.execute(
                    text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                ).scalar_one()
            )
        head = conn.execute(
            select(_SEAL.c.seq, _SEAL.c.event_id, _SEAL.c.event_txid, _SEAL.c.hash)
            .order_by(_SEAL.c.seq.desc())
            .limit(1)
        ).first()
        seq, last_id, last_txid = (0, 0, 0) if head is None else (head[0], head[1], head[2])
        prev = GENESIS if head is None else bytes.fromhex(head[3])
        if pg:
            params = {"t": last_txid, "i": last_id, "h": horizon, "n": BATCH}
            rows = [_values(r, 1) for r in conn.execute(_PENDING_PG, params)]
        else:
            rows = [
                _values(r, 1) for r in conn.execute(_PENDING_SQLITE, {"i": last_id, "n": BATCH})
            ]
        now = utcnow()
        seals = []
        for row in rows:
            seq += 1
            prev = link(prev, row)
            seals.append(
                {
                    "seq": seq,
                    "event_id": row[0],
                    "event_txid": row[N_FIELDS],
                    "hash": prev.hex(),
                    "sealed_at": now,
                }
            )
        if seals:
            conn.execute(_SEAL.insert(), seals)
        result.sealed = len(seals)
        result.head_seq = seq
        if seq:
            written = _maybe_checkpoint(conn, seq=seq, head=prev.hex(), force=force_checkpoint)
            if written is not None:
                result.checkpoint_seq = seq
    return result, written


def _maybe_checkpoint(
    conn: Connection, *, seq: int, head: str, force: bool
) -> dict[str, Any] | None:
    settings = get_settings()
    last = conn.execute(
        select(_CP.c.seq, _CP.c.signed_at).order_by(_CP.c.seq.desc()).limit(1)
    ).first()
    now = utcnow()
    if last is not None:
        if last[0] >= seq:
            return None
        age = now - last[1]
        due = seq - last[0] >= settings.audit_checkpoint_events or age >= timedelta(
            seconds=settings.audit_checkpoint_seconds
        )
        if not (due or force):
            return None
    ring = load_keyring()
    row = {
        "seq": seq,
        "head_hash": head,
        "signed_at": now,
        "key_id": key_id(ring.audit_public_key),
        "signature": ring.audit_signing_key.sign(checkpoint_message(seq, head, now)).hex(),
    }
    conn.execute(_CP.insert(), [row])
    return row


def _append_checkpoint_file(row: dict[str, Any]) -> None:
    """Append a committed checkpoint to the file kept outside the database (one JSON line)."""
    path = get_settings().audit_checkpoint_file
    if path is None:
        return
    line = json.dumps(
        {
            "seq": row["seq"],
            "head_hash": row["head_hash"],
            "signed_at": row["signed_at"].isoformat(),
            "key_id": row["key_id"],
            "signature": row["signature"],
        }
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- verification


@dataclass
class Checkpoint:
    """A signed checkpoint, from the database or the file."""

    seq: int
    head_hash: str
    signed_at: datetime
    key_id: str
    signature: str
    where: str  # "database" or "file"

    def signature_ok(self, public: Ed25519PublicKey) -> bool:
        """Whether the audit key signed exactly this (seq, head, time)."""
        try:
            public.verify(
                bytes.fromhex(self.signature),
                checkpoint_message(self.seq, self.head_hash, self.signed_at),
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass
class VerifyReport:
    """The outcome of `verify`: API.md's {"ok","events_checked","first_bad"}."""

    ok: bool
    events_checked: int
    first_bad: dict[str, Any] | None = None
    checkpoints_checked: int = 0
    unsealed: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The JSON answer of GET /api/v1/audit/verify."""
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "first_bad": self.first_bad,
            "checkpoints_checked": self.checkpoints_checked,
            "unsealed": self.unsealed,
        }


def read_checkpoint_file(path: Path | None) -> list[Checkpoint]:
    """Checkpoints appended to the file; an unreadable line is itself reported by verify."""
    if path is None or not Path(path).exists():
        return []
    out: list[Checkpoint] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            out.append(
                Checkpoint(
                    seq=int(data["seq"]),
                    head_hash=str(data["head_hash"]),
                    signed_at=datetime.fromisoformat(data["signed_at"]),
                    key_id=str(data["key_id"]),
                    signature=str(data["signature"]),
                    where="file",
                )
            )
        except (ValueError, KeyError, TypeError):
            out.append(
                Checkpoint(
                    seq=0,
                    head_hash="",
                    signed_at=utcnow(),
                    key_id="",
                    signature="",
                    where=f"file line {number}",
                )
            )
    return out


_EVENT_COLUMNS = ", ".join(f"e.{name}" for name in CANONICAL_FIELDS)  # fixed names
# After the canonical values: the txid the seal recorded and the event's txid now
# (PostgreSQL; 0 and 0 on SQLite). `canonical` reads only the first N_FIELDS values.
_CHAIN_FROM = (
    f"SELECT s.seq, s.event_id, s.hash, e.id, {_EVENT_COLUMNS}, s.event_txid, {{txid}} "  # noqa: S608  # nosec B608 - fixed column names
    "FROM audit_seal s LEFT JOIN audit_event e ON e.id = s.event_id "
)
_PG_TXID = "e.txid::text::bigint"
_CHAIN_SQL = {
    True: _CHAIN_FROM.format(txid=_PG_TXID) + "ORDER BY s.seq",
    False: _CHAIN_FROM.format(txid="0") + "ORDER BY s.seq",
}
_RANGE_SQL = _CHAIN_FROM.format(txid=_PG_TXID) + "WHERE s.seq BETWEEN %s AND %s ORDER BY s.seq"
_SEAL_TXID = 4 + N_FIELDS  # in a chain row: the seal's txid, then the event's

# The fast path's rows: PostgreSQL writes each event's `canonical` bytes itself (in C), so
# the Python loop only hashes a prebuilt buffer. Each value is rendered exactly as
# `canonical` renders it in a UTC session: integers as digits, text through to_json (the
# same escapes as Python's json with ensure_ascii=False: \" \\ \b \f \n \r \t, other
# control characters as \u00XX), NULL as null, time as datetime.isoformat() (microseconds
# only when not zero). Times outside years 1..9999 (which Python cannot hold) give NULL,
# which sends verify to the exact walk. A rendering that differed from `canonical` could
# only fail a hash, never pass one: the fast path's "intact" still means every stored hash
# was reproduced.
_JSON_TEXT = "coalesce(to_json(e.{0})::text, 'null')"
_JSON_INT = "coalesce(e.{0}::text, 'null')"
_CANON_TIME = (  # one to_char (the costly part), its ".000000" dropped as isoformat does
    "CASE WHEN e.time >= TIMESTAMPTZ '0001-01-01 00:00:00+00' "
    "AND e.time < TIMESTAMPTZ '10000-01-01 00:00:00+00' THEN "
    "'\"' || replace(to_char(e.time, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') "
    "|| '+00:00\"' END"
)
_CANON_SQL = (
    "convert_to('[' || "
    + " || ',' || ".join(
        "e.id::text"
        if name == "id"
        else _CANON_TIME
        if name == "time"
        else (_JSON_INT if name in ("patient_id", "work_item_id") else _JSON_TEXT).format(name)
        for name in CANONICAL_FIELDS
    )
    + " || ']', 'UTF8')"
)
# One range checked inside PostgreSQL: link n checks if SHA-256(stored hash n-1 || canonical
# event n) is its stored hash, which needs no other link, so no row leaves the server.
# Together with gaplessness and the first link from GENESIS this is the chain recomputed.
# Also per row, as `_soft_problem`: the txid the seal recorded, and the time not before the
# floor of the last checkpoint signed before it (width_bucket over the checkpoints' seqs,
# a sentinel at seq 0 with no floor first).
_RANGE_CHECK_SQL = (
    "SELECT count(*) FILTER (WHERE ok), count(*) FROM ("  # noqa: S608  # nosec B608 - fixed SQL
    "SELECT s.seq, encode(sha256(decode(CASE WHEN s.seq = 1 THEN %(genesis)s ELSE "
    f"lag(s.hash) OVER (ORDER BY s.seq) END, 'hex') || {_CANON_SQL}), 'hex') = s.hash "
    f"AND s.event_txid IS NOT DISTINCT FROM {_PG_TXID} "
    "AND e.time >= (%(floor_times)s::timestamptz[])"
    "[width_bucket((s.seq - 1)::bigint, %(floor_seqs)s::bigint[])] AS ok "
    # LATERAL ... OFFSET 0: one index lookup per seal, in seq order, so the window needs no
    # sort (a plain join was planned as a hash join over the whole event table per range).
    "FROM audit_seal s LEFT JOIN LATERAL (SELECT * FROM audit_event ev "
    "WHERE ev.id = s.event_id OFFSET 0) AS e ON true "
    "WHERE s.seq BETWEEN %(before)s AND %(hi)s) AS links WHERE seq >= %(lo)s"
)


def _utc(value: Any) -> datetime:
    """A raw driver timestamp as the aware UTC datetime the ORM would give (UTCDateTime)."""
    if isinstance(value, str):  # SQLite stores naive UTC text
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _chain_rows(conn: Connection, pg: bool) -> Iterator[Sequence[Any]]:
    """(seq, sealed event id, stored hash, event id or None, *canonical values) by seq.

    Read through the driver without ORM type processing: verify is a full scan.
    """
    result = conn.exec_driver_sql(
        _CHAIN_SQL[pg], execution_options={"stream_results": True, "yield_per": BATCH}
    )
    for row in result:
        if row[3] is None:
            yield row
            continue
        yield _values(row, 5)


def _bad(seq: int | None, event_id: int | None, reason: str) -> dict[str, Any]:
    return {"seq": seq, "event_id": event_id, "reason": reason}


# An event's time may not fall before the checkpoint signed before it was sealed (less a
# slack for a transaction that was open across that checkpoint): (checkpoint seq, earliest
# time allowed after it), by seq. Only checkpoints whose signature checks count.
Floors = list[tuple[int, datetime]]


def _floors(by_seq: dict[int, list[Checkpoint]]) -> Floors:
    slack = timedelta(seconds=get_settings().audit_clock_slack_seconds)
    return [(seq, min(cp.signed_at for cp in cps) - slack) for seq, cps in sorted(by_seq.items())]


def _floor_at(floors: Floors, seq: int) -> int:
    """Index in `floors` of the last checkpoint before `seq`, or -1."""
    return bisect.bisect_left(floors, seq, key=lambda f: f[0]) - 1


def _soft_problem(row: Sequence[Any], floors: Floors, at: int) -> str | None:
    """What is wrong with a chain row whose hash checks: a changed txid or a back-dated time.

    `at`: the index of the checkpoint before this row (from `_floor_at`).
    """
    if row[_SEAL_TXID] != row[_SEAL_TXID + 1]:
        return "transaction id changed after sealing (the sealer's watermark relies on it)"
    if at >= 0 and row[5] < floors[at][1]:
        return (
            f"event time {row[5].isoformat()} is before the checkpoint signed at seq "
            f"{floors[at][0]} that preceded its sealing: back-dated"
        )
    return None


def verify(
    *,
    engine: Engine | None = None,
    keyring: Keyring | None = None,
    connection: Connection | None = None,
    jobs: int = 1,
) -> VerifyReport:
    """Recompute the chain, check every checkpoint signature, report the first break.

    The first break is named by its chain position (`seq`) and event id: an altered,
    reordered or deleted event; a row inserted into the chain; a gap; a chain that stops
    before a signed checkpoint (cut-off tail); or an event written behind the sealer.
    `connection`: read through it (a request's own, so SQLite's write lock is no obstacle).
    `jobs`: on PostgreSQL, processes that recompute ranges of the chain side by side.
    """
    ring = keyring or load_keyring()
    if connection is not None:
        return _verify(connection, ring, jobs)
    with (engine or get_engine()).connect() as conn:
        return _verify(conn, ring, jobs)


def _verify(conn: Connection, ring: Keyring, jobs: int = 1) -> VerifyReport:
    public = ring.audit_public_key
    pg = _is_pg(conn)
    problems: list[dict[str, Any]] = []
    db_cps = [
        Checkpoint(r.seq, r.head_hash, r.signed_at, r.key_id, r.signature, "database")
        for r in conn.execute(select(_CP).order_by(_CP.c.seq))
    ]
    checkpoints = db_cps + read_checkpoint_file(get_settings().audit_checkpoint_file)
    by_seq: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        if not cp.signature_ok(public):
            problems.append(
                _bad(cp.seq or None, None, f"checkpoint in the {cp.where}: bad signature")
            )
        else:
            by_seq.setdefault(cp.seq, []).append(cp)

    floors = _floors(by_seq)
    intact = _fast_check(conn, by_seq, floors, jobs) if pg and not problems else None
    if intact is not None:
        checked = intact
    else:
        checked = _walk(conn, pg, by_seq, floors, problems)
    if not problems:
        beyond = [cp for cp in checkpoints if cp.seq > checked and cp.signature]
        if beyond:
            top = max(beyond, key=lambda cp: cp.seq)
            problems.append(
                _bad(
                    checked + 1,
                    None,
                    f"the chain ends at seq {checked} but a checkpoint in the {top.where} "
                    f"covers seq {top.seq}: events were cut off",
                )
            )
    if not problems:
        in_db = {(cp.seq, cp.signature) for cp in db_cps}
        gone = sorted(
            {cp.seq for cp in checkpoints if cp.where == "file" and cp.seq in by_seq}
            - {seq for seq, _ in in_db}
        )
        if gone:
            problems.append(
                _bad(
                    gone[0],
                    None,
                    f"the checkpoint signed at seq {gone[0]} is in the checkpoint file but "
                    "missing from the database: deleted",
                )
            )
    unsealed, behind = _unsealed(conn, pg)
    if behind is not None and not problems:
        problems.append(_bad(None, behind, "event written behind the sealer (not chained)"))
    return VerifyReport(
        ok=not problems,
        events_checked=checked,
        first_bad=problems[0] if problems else None,
        checkpoints_checked=len(by_seq),  # distinct positions (database and file agree)
        unsealed=unsealed,
        problems=problems,
    )


def _walk(
    conn: Connection,
    pg: bool,
    by_seq: dict[int, list[Checkpoint]],
    floors: Floors,
    problems: list[dict[str, Any]],
) -> int:
    """Recompute the whole chain in order and name the first break; returns events checked.

    A link whose hash checks can still be wrong (a changed txid, a back-dated time): such a
    problem is noted and the walk goes on, because the next link may show that the row was
    inserted into the chain, which names the same position better.
    """
    checked = 0
    prev, prev2 = GENESIS, GENESIS
    prev_event: int | None = None
    last_good_cp = 0
    at = -1
    soft: dict[str, Any] | None = None
    hard: dict[str, Any] | None = None
    for row in _chain_rows(conn, pg):
        seq, sealed_id, stored, present = row[0], row[1], row[2], row[3]
        values = row[4:]
        expected = checked + 1
        if seq != expected:
            hard = _bad(expected, None, "missing from the chain (a seal was removed)")
            break
        if present is None:
            hard = _bad(seq, sealed_id, "event deleted")
            break
        h = link(prev, values)
        if h.hex() != stored:
            if seq > 1 and link(prev2, values).hex() == stored:
                hard = _bad(seq - 1, prev_event, "event inserted into the chain")
            else:
                hard = _bad(seq, values[0], "event altered or out of order")
            break
        for cp in by_seq.get(seq, []):
            if cp.head_hash != h.hex():
                hard = _bad(
                    last_good_cp + 1,
                    None,
                    f"chain differs from the checkpoint signed at seq {seq} "
                    f"({cp.where}): rewritten between seq {last_good_cp + 1} "
                    f"and {seq}",
                )
                break
        if hard is not None:
            break
        while at + 1 < len(floors) and floors[at + 1][0] < seq:
            at += 1
        if soft is None:
            reason = _soft_problem(row, floors, at)
            if reason is not None:
                soft = _bad(seq, values[0], reason)
        if seq in by_seq:
            last_good_cp = seq
        prev2, prev = prev, h
        prev_event = values[0]
        checked += 1
    if soft is not None and (hard is None or soft["seq"] < hard["seq"]):
        problems.append(soft)
        return int(soft["seq"]) - 1
    if hard is not None:
        problems.append(hard)
    return checked


# The fast path (PostgreSQL). Link n is h_n = SHA-256(h_{n-1} || canonical(event_n)), so a
# range of the chain can be recomputed on its own from the stored hash just before it: if
# every range reproduces its stored hashes, so does the whole chain, by induction. Ranges go
# to `jobs` processes, each on its own connection, reading through a binary server-side
# cursor. Any disagreement (or a checkpoint that differs) sends verify back to `_walk`,
# which names the first break exactly as before; the fast path only ever says "intact".
RANGE = 50_000


def _fast_check(
    conn: Connection, by_seq: dict[int, list[Checkpoint]], floors: Floors, jobs: int
) -> int | None:
    """Events checked if the whole chain and every checkpoint agree, else None."""
    top = conn.execute(select(literal_column("max(seq)")).select_from(_SEAL)).scalar()
    if not top:
        return None
    ranges = [(lo, min(lo + RANGE - 1, top)) for lo in range(1, top + 1, RANGE)]
    url = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    if jobs > 1 and len(ranges) > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            results = list(
                pool.map(
                    _check_ranges,
                    [url] * len(ranges),
                    [[r] for r in ranges],
                    [floors] * len(ranges),
                )
            )
    else:
        results = [_check_ranges(url, ranges, floors)]
    if not all(results):
        return None
    wanted = sorted(seq for seq in by_seq if seq <= top)
    if wanted:
        rows = conn.execute(select(_SEAL.c.seq, _SEAL.c.hash).where(_SEAL.c.seq.in_(wanted)))
        stored: dict[int, str] = {int(seq): str(h) for seq, h in rows}
        for seq in wanted:
            if any(cp.head_hash != stored.get(seq) for cp in by_seq[seq]):
                return None
    return int(top)


def _check_ranges(url: str, ranges: list[tuple[int, int]], floors: Floors) -> bool:
    """Whether every range of seals is gapless, reproduces its stored hashes, and has no
    changed txid or back-dated time.

    On a connection of its own, in UTC, so the driver's timestamps are already what
    `canonical` writes (no per-row conversion).
    """
    import psycopg  # the PostgreSQL driver; only this path needs it directly

    with psycopg.connect(url) as raw:
        raw.execute("SET TIME ZONE 'UTC'")
        raw.execute("SET jit = off")  # compiling the range query cost more than it saved
        return all(_check_range(raw, lo, hi, floors) for lo, hi in ranges)


def _check_range(raw: Any, lo: int, hi: int, floors: Floors) -> bool:
    """Whether seals lo..hi are gapless and each reproduces its stored hash (and passes
    `_soft_problem`: the txid the seal recorded, no time before its checkpoint's floor).

    One aggregate query (`_RANGE_CHECK_SQL`): the canonical bytes are rendered, hashed and
    compared by PostgreSQL, in C; only two counts come back. Anything it cannot read (a
    stored hash that is not hex) counts as a disagreement: the exact walk then names it.
    """
    import psycopg  # the PostgreSQL driver; only this path needs it directly

    params = {
        "genesis": GENESIS.hex(),
        "floor_seqs": [0, *(seq for seq, _ in floors)],
        "floor_times": [datetime.min.replace(tzinfo=UTC), *(when for _, when in floors)],
        "before": lo - 1,
        "lo": lo,
        "hi": hi,
    }
    try:
        good, total = raw.execute(_RANGE_CHECK_SQL, params).fetchone()
    except psycopg.DataError:
        raw.rollback()
        return False
    return bool(good == total == hi - lo + 1)


def _unsealed(conn: Connection, pg: bool) -> tuple[int, int | None]:
    """(events not yet sealed, the first one below the sealer's watermark or None)."""
    head = conn.execute(
        select(_SEAL.c.event_id, _SEAL.c.event_txid).order_by(_SEAL.c.seq.desc()).limit(1)
    ).first()
    sealed = select(_SEAL.c.event_id).where(_SEAL.c.event_id == _EV.c.id).exists()
    count = int(
        conn.execute(select(literal_column("count(*)")).select_from(_EV).where(~sealed)).scalar()
        or 0
    )
    if head is None or count == 0:
        return count, None
    if pg:
        below = text(
            "(audit_event.txid, audit_event.id) < (CAST(CAST(:t AS text) AS xid8), :i)"
        ).bindparams(t=head[1], i=head[0])
    else:
        below = _EV.c.id < head[0]
    first = conn.execute(
        select(_EV.c.id).where(~sealed).where(below).order_by(_EV.c.id).limit(1)
    ).scalar()
    return count, first


# ---------------------------------------------------------------- the background sealer


ROLL_UP_EVERY = timedelta(hours=1)


def roll_up_activity(*, engine: Engine | None = None) -> int:
    """Roll the settled days of the compliance activity figure into `audit_day` (counts per
    day and kind; see server.audit.activity). Returns how many days it closed."""
    from sqlmodel import Session

    from server.audit import activity

    with Session(engine or get_engine()) as session:
        done = activity.roll_up(session)
        session.commit()
    return done


class BackgroundSealer:
    """Seals every `interval` seconds in a daemon thread until `stop()`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        rolled: datetime | None = None
        while not self._stop.wait(self.interval):
            try:
                seal_pending()
            except Exception as exc:  # keep sealing on the next round; never log event data
                log.warning("audit sealer round failed: %s", type(exc).__name__)
            # Once an hour: close the settled days of the compliance activity figure.
            now = datetime.now(UTC)
            if rolled is None or now - rolled >= ROLL_UP_EVERY:
                try:
                    roll_up_activity()
                    rolled = now
                except Exception as exc:  # the figure counts open days itself meanwhile
                    log.warning("audit activity roll-up failed: %s", type(exc).__name__)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait for its current round to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
