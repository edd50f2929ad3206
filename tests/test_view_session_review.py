"""Review of the one-statement record view (issue 23): cases where it must still answer,
audit and behave as the ordinary path does."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from server.config import get_settings
from server.db import get_engine
from server.keyring import AwsKmsProvider
from server.models import AuditEvent, ItemCodes, UserSession
from server.workbench import router as workbench_router
from tests.support.coding import Held, coder_with_item, signed_in
from tests.support.factories import make_encounter, make_user, shift_session, sign_in


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _FakeKms:
    """A KMS client standing in for AWS: wraps by prefixing, and notes where it was called."""

    class exceptions:  # noqa: N801 - boto3's name
        class InvalidCiphertextException(Exception):  # noqa: N818
            """KMS's refusal of a blob."""

    def __init__(self) -> None:
        self.decrypts_on_loop: list[bool] = []

    def encrypt(self, *, KeyId: str, Plaintext: bytes, EncryptionContext: Any) -> Any:  # noqa: N803
        return {"CiphertextBlob": b"kms!" + Plaintext}

    def decrypt(
        self,
        *,
        CiphertextBlob: bytes,  # noqa: N803
        KeyId: str,  # noqa: N803
        EncryptionContext: Any,  # noqa: N803
    ) -> Any:
        self.decrypts_on_loop.append(_on_event_loop())
        return {"Plaintext": CiphertextBlob[4:]}


def _kms(keyring: Any, monkeypatch: pytest.MonkeyPatch) -> _FakeKms:
    """KMS as the key provider (CHARTDESK_KMS_KEY_ID), answered by a fake client."""
    fake = _FakeKms()
    monkeypatch.setenv("CHARTDESK_KMS_KEY_ID", "test-key")
    get_settings.cache_clear()
    keyring.touch()
    monkeypatch.setattr(AwsKmsProvider, "client", lambda self: fake)
    return fake


def test_a_kms_wrapped_key_is_not_unwrapped_on_the_event_loop(
    make_client: Any, backend: str, keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CHARTDESK_KMS_KEY_ID, opening a chart is a network call to KMS (seconds, and
    minutes of retries in an outage): it must run in a worker thread as the ordinary path
    runs it, never on the loop that serves every other request of the process."""
    if backend != "postgresql":
        pytest.skip("the one-statement view is PostgreSQL's")
    fake = _kms(keyring, monkeypatch)
    held = coder_with_item(make_client, "ana")
    with Session(get_engine()) as s:
        kek = s.execute(
            text(
                "SELECT k.kek_id FROM data_key k JOIN encounter e ON e.data_key_id = k.id "
                "JOIN work_item w ON w.encounter_id = e.id WHERE w.id = :i"
            ),
            {"i": held.item_id},
        ).scalar_one()
    assert kek == "kms:test-key"
    calls: list[int] = []
    plain = workbench_router._item_plain
    monkeypatch.setattr(workbench_router, "_item_plain", lambda *a: (calls.append(1), plain(*a))[1])
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert r.status_code == 200, r.text
    assert calls == []  # the one-statement view answered
    assert fake.decrypts_on_loop == [False]


def test_kms_out_of_reach_leaves_no_unfollowed_view_row(
    make_client: Any, backend: str, keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KMS cannot be reached when the chart is opened: no chart leaves, and the log does not
    say it was seen (the ordinary path rolls its event back; the one statement committed
    its event, so a `failed` one must follow)."""
    fake = _kms(keyring, monkeypatch)
    held = coder_with_item(make_client, "ana")

    def down(**_: Any) -> Any:
        raise ConnectionError("kms.us-east-1.amazonaws.com unreachable")

    monkeypatch.setattr(fake, "decrypt", down)
    with Session(get_engine()) as s:
        before = int(s.execute(text("SELECT coalesce(max(id), 0) FROM audit_event")).scalar())
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert r.status_code == 500
    with Session(get_engine()) as s:
        rows = s.exec(
            select(AuditEvent.action, AuditEvent.outcome, AuditEvent.detail)
            .where(AuditEvent.work_item_id == held.item_id, col(AuditEvent.id) > before)
            .order_by(col(AuditEvent.id))
        ).all()
    # The ordinary path (SQLite) rolled its event back and wrote none; the one statement
    # committed its event, and the failure follows it.
    expected = []
    if backend == "postgresql":
        expected = [
            ("view-record", "success", "view=coding"),
            ("view-record", "failed", "ConnectionError"),
        ]
    assert [tuple(x) for x in rows] == expected


def test_a_broken_code_seal_leaves_no_unfollowed_view_row(make_client: Any, backend: str) -> None:
    """Code lines altered at rest: the answer is 500 record_integrity on both paths. The one
    statement committed its view event, so a `failed` row must follow it (as it does for a
    broken document), not a bare `success` for a chart that never left."""
    held = coder_with_item(make_client, "ana")
    r = held.client.put(
        f"/api/v1/work/{held.item_id}/codes", json={"diagnoses": [{"code": "J20.9"}]}
    )
    assert r.status_code == 200, r.text
    with Session(get_engine()) as s:
        row = s.get(ItemCodes, held.item_id)
        assert row is not None
        row.sealed_lines = row.sealed_lines[:-1] + bytes([row.sealed_lines[-1] ^ 1])
        s.add(row)
        s.commit()
        before = int(s.execute(text("SELECT coalesce(max(id), 0) FROM audit_event")).scalar())
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert (r.status_code, r.json()["error"]["code"]) == (500, "record_integrity")
    with Session(get_engine()) as s:
        rows = s.exec(
            select(AuditEvent.action, AuditEvent.outcome)
            .where(AuditEvent.work_item_id == held.item_id, col(AuditEvent.id) > before)
            .order_by(col(AuditEvent.id))
        ).all()
    assert [tuple(x) for x in rows] in ([], [("view-record", "success"), ("view-record", "failed")])


def _denied_access(actor: str) -> int:
    with Session(get_engine()) as s:
        return len(
            s.exec(
                select(AuditEvent.id).where(
                    AuditEvent.actor == actor,
                    AuditEvent.action == "access",
                    AuditEvent.outcome == "denied",
                )
            ).all()
        )


@pytest.mark.parametrize("wild", ["0", "abc", str(2**31)])
def test_a_bad_item_id_is_refused_by_the_access_rule_first(make_client: Any, wild: str) -> None:
    """Who may call is checked before what they sent: signed out 401, a biller 403 (audited),
    as every other route answers (and this one did before it was one statement); a coder
    then hears the 422 of the bad id, with no idle-clock touch kept."""
    url = f"/api/v1/work/{wild}"
    assert make_client().get(url).status_code == 401
    biller = signed_in(make_client, "bill", "biller")
    r = biller.get(url)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert _denied_access("bill") == 1
    coder = signed_in(make_client, "cody", "coder")
    r = coder.get(url)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_failed")
    assert r.json()["error"]["details"][0]["loc"][-1] == "work_item_id"


def test_the_other_one_statement_routes_check_access_before_their_parameters(
    make_client: Any,
) -> None:
    """Next (a bad body) and the audit search (a bad filter): 401 signed out, 403 audited
    for a person without the role, as the ordinary rule answers."""
    anonymous = make_client()
    assert anonymous.get("/api/v1/audit/events?work_item=0").status_code == 401
    assert anonymous.post("/api/v1/work/next", json={"queue": ["x"]}).status_code == 401
    biller = signed_in(make_client, "bill", "biller")
    assert biller.get("/api/v1/audit/events?work_item=0").status_code == 403
    assert _denied_access("bill") == 1


def test_an_idle_session_is_ended_once_and_nothing_is_opened(make_client: Any) -> None:
    """Idle past the limit: the statement refuses and writes nothing; the ordinary rule ends
    the session (one `session-timeout` event) and answers 401 session_expired."""
    held = coder_with_item(make_client, "ana")
    shift_session(last_seen_at=timedelta(minutes=16))
    r = held.client.get(f"/api/v1/work/{held.item_id}")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "session_expired")
    with Session(get_engine()) as s:
        assert s.exec(select(UserSession)).all() == []
        timeouts = s.exec(
            select(AuditEvent.outcome).where(AuditEvent.action == "session-timeout")
        ).all()
        viewed = s.exec(
            select(AuditEvent.id).where(
                AuditEvent.work_item_id == held.item_id, AuditEvent.action == "view-record"
            )
        ).all()
    assert timeouts == ["success"]
    assert viewed == []


def test_a_coder_who_is_also_a_supervisor_sees_and_is_audited_alike(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several roles: the same chart and the same audit row (all the roles named) both ways."""
    if backend != "postgresql":
        pytest.skip("the one-statement view is PostgreSQL's")
    from tests.test_view_session import _both_ways

    item_id = make_encounter()
    account = make_user("sam", "supervisor", "coder", "biller", queues=["default"])
    client = make_client()
    sign_in(client, account)
    assert client.post("/api/v1/work/next", json={}).json()["id"] == item_id
    (fast, plain), (fast_rows, plain_rows) = _both_ways(Held(client, account, item_id), monkeypatch)
    assert fast == plain
    assert fast_rows == plain_rows
    assert fast_rows[0]["actor_roles"] == "biller coder supervisor"


@pytest.mark.parametrize("path", ["one statement", "ordinary"])
def test_a_lease_that_runs_out_while_the_view_waits_for_its_lock_is_409(
    make_client: Any, backend: str, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The item's row is locked by another transaction (a heartbeat, a submit) while the lease
    runs out: once the lock is granted the lease is checked as of then, as the ordinary
    `leased_item` checks it (its clock is read after the lock), so no chart leaves."""
    if path == "ordinary":
        monkeypatch.setattr(workbench_router, "async_pool", lambda: None)
    held = coder_with_item(make_client, "ana")
    url = f"/api/v1/work/{held.item_id}"
    answers: list[Any] = []
    with get_engine().connect() as other:
        other.execute(
            text(
                "UPDATE work_item SET lease_expires_at = :t WHERE id = :i"
            ),  # holds the row lock until the commit below
            {"t": datetime.now(UTC) + timedelta(seconds=1), "i": held.item_id},
        )
        if backend == "sqlite":
            other.commit()  # one writer: the request would wait for the file lock instead
            time.sleep(1.5)
        else:
            getter = threading.Thread(target=lambda: answers.append(held.client.get(url)))
            getter.start()
            time.sleep(1.5)  # the request waits for the row; the lease runs out meanwhile
            other.commit()
            getter.join()
    r = answers[0] if answers else held.client.get(url)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "lease_expired")
