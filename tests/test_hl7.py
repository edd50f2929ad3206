"""HL7 v2 over MLLP: a real client on a plain TCP socket against a listener started here.

The sample messages in tests/data/hl7 carry one Synthea visit (conchita_0580b365.json,
its first encounter): admission (A01, PV1 before PID and two IN1, as feeds send them),
its history and physical note (MDM T02, base64 ED) and the discharge (A03). The chart
must read back exactly as the FHIR door gives it for the same encounter.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import select

from server.config import get_settings
from server.interfaces import metrics, mllp
from server.models import Hl7Message, Status, WorkItem
from server.records import fhir
from server.records import service as records_service
from tests.support.factories import make_token, make_user, sign_in
from tests.support.records import FHIR, fixture_files, load, row_counts

DATA = Path(__file__).parent / "data" / "hl7"
START, END = b"\x0b", b"\x1c\x0d"
CONCHITA = "conchita_0580b365.json"
VISIT = "cc5e838a-8e48-ad4d-a8df-78b64d8aa4f0"


def message(name: str, **replace: str) -> bytes:
    """A sample message with CR segment ends (as sent on the wire), text replaced if asked."""
    text = (DATA / f"{name}.hl7").read_text().strip().replace("\n", "\r")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return (text + "\r").encode()


class Listener:
    """`chartdesk hl7 listen` in a thread: its own event loop, an ephemeral port."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            mllp.start("127.0.0.1", 0, context=mllp.tls_context())
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> Listener:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def connect(self) -> socket.socket:
        """A plain TCP client connection."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture
def listener(db_url: str) -> Iterator[Listener]:
    """A listener against the test database."""
    with Listener() as running:
        yield running


def read_frame(sock: socket.socket) -> bytes:
    """One MLLP frame's payload from `sock`."""
    data = b""
    while not data.endswith(END):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole frame: {data!r}"
        data += chunk
    assert data.startswith(START)
    return data[1:-2]


def send(sock: socket.socket, payload: bytes) -> dict[str, list[str]]:
    """Send one framed message and return its ACK as {segment name: fields}."""
    sock.sendall(START + payload + END)
    return parse_ack(read_frame(sock))


def parse_ack(raw: bytes) -> dict[str, list[str]]:
    """An ACK's segments by name (fields split on |, MSH numbered like the others)."""
    out = {}
    for segment in raw.decode().strip("\r").split("\r"):
        fields = segment.split("|")
        if fields[0] == "MSH":
            fields.insert(1, "|")
        out[fields[0]] = fields
    return out


def deliver(listener: Listener, *payloads: bytes) -> list[dict[str, list[str]]]:
    """Send messages on one connection, one after the other."""
    with listener.connect() as sock:
        return [send(sock, p) for p in payloads]


def _claim_and_view(make_client) -> dict:
    coder = make_user("hl7coder", "coder", queues=["default"])
    client = make_client()
    sign_in(client, coder)
    claimed = client.post("/api/v1/work/next", json=None)
    assert claimed.status_code == 200, claimed.text
    view = client.get(f"/api/v1/work/{claimed.json()['id']}")
    assert view.status_code == 200, view.text
    return view.json()


def test_a_visit_over_mllp_reads_back_as_the_fhir_door_gives_it(listener, make_client):
    acks = deliver(
        listener, message("conchita_a01"), message("conchita_t02"), message("conchita_a03")
    )
    for ack, control in zip(acks, ["MSG-0001", "MSG-0002", "MSG-0003"], strict=True):
        assert ack["MSA"][1:3] == ["AA", control], ack
        assert "ERR" not in ack
        assert ack["MSH"][9].startswith("ACK^")
        assert ack["MSH"][12] == "2.5.1"
        # The ACK goes back to the sender: our receiving side becomes its sending side.
        assert ack["MSH"][5:7] == ["SYNTHEA-EHR", "HILLTOWN"]

    expected = next(
        e
        for e in fhir.parse_bundle(load(fixture_files()[0].parent / CONCHITA))
        if e.external_id == VISIT
    )
    chart = _claim_and_view(make_client)
    assert chart["patient"] == {
        "mrn": expected.patient.mrn,
        "name": expected.patient.name,
        "birth_date": expected.patient.birth_date.isoformat(),
        "sex": expected.patient.sex,
    }
    enc = chart["encounter"]
    assert {k: enc[k] for k in ("source", "external_id", "class", "facility", "service_type")} == {
        "source": expected.source_system,
        "external_id": expected.external_id,
        "class": expected.encounter_class.value,
        "facility": expected.facility,
        "service_type": expected.service_type,
    }
    assert enc["payer_class"] == expected.payer_class == "commercial"
    assert datetime.fromisoformat(enc["start"]) == expected.start
    assert datetime.fromisoformat(enc["end"]) == expected.end  # from the A03
    docs = [{k: d[k] for k in ("title", "type", "text")} for d in chart["documents"]]
    assert docs == [{"title": d.title, "type": d.type, "text": d.text} for d in expected.documents]
    assert datetime.fromisoformat(chart["documents"][0]["date"]) == expected.documents[0].date

    # Same identity as the FHIR door: the bundle's copy of this visit is a duplicate.
    ingest = make_client()
    ingest.headers["Authorization"] = f"Bearer {make_token('engine', 'ingest')}"
    path = fixture_files()[0].parent / CONCHITA
    answer = ingest.post("/api/v1/fhir", content=path.read_bytes(), headers=FHIR).json()
    statuses = {i["external_id"]: i["status"] for i in answer["work_items"]}
    assert statuses[VISIT] == "duplicate"


def test_the_same_message_twice_is_one_item_and_both_answered_aa(listener, session):
    first, again = deliver(listener, message("conchita_a01"), message("conchita_a01"))
    assert first["MSA"][1] == again["MSA"][1] == "AA"
    # Another control id for the same visit: idempotent by the visit number too.
    (other,) = deliver(listener, message("conchita_a01", **{"MSG-0001": "MSG-0099"}))
    assert other["MSA"][1] == "AA"
    assert len(session.exec(select(WorkItem)).all()) == 1
    assert len(session.exec(select(Hl7Message)).all()) == 2


BAD = {
    "unknown message type": (
        lambda: message("conchita_a01", **{"ADT^A01^ADT_A01": "SIU^S12^SIU_S12"}),
        "AR",
        "200",
    ),
    "unknown event": (
        lambda: message("conchita_a01", **{"ADT^A01^ADT_A01": "ADT^A40^ADT_A39"}),
        "AR",
        "201",
    ),
    "no PID-3": (
        lambda: message(
            "conchita_a01",
            **{
                "PID|1||0580b365-60f4-faeb-30d1-7107ebd06450^^^"
                "&https://github.com/synthetichealth/synthea&URI^MR||": "PID|1||||"
            },
        ),
        "AE",
        "101",
    ),
    "no PV1-19": (
        lambda: message(
            "conchita_a01",
            **{f"{VISIT}^^^&https://github.com/synthetichealth/synthea&URI^VN": ""},
        ),
        "AE",
        "101",
    ),
    "bad escape sequence": (
        lambda: message("conchita_a01", **{"Ramón841^": "Ram\\Q\\ón841^"}),
        "AE",
        "102",
    ),
    "escape left open": (
        lambda: message("conchita_a01", **{"Ramón841^": "Ramón841\\F^"}),
        "AE",
        "102",
    ),
    "note before its admission": (lambda: message("conchita_t02"), "AE", "204"),
    "bad base64 note": (
        lambda: message("conchita_t02", **{"^Base64^": "^Base64^%%%"}),
        "AE",
        "102",
    ),
    "discharge without a discharge time": (
        lambda: message("conchita_a03", **{"|20241026010816+0000": "|"}),
        "AE",
        "101",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_messages_are_answered_with_a_reason_and_store_nothing(listener, case):
    build, code, hl7_code = BAD[case]
    payload = build()
    before = row_counts()
    (ack,) = deliver(listener, payload)
    assert ack["MSA"][1] == code, ack
    control = payload.split(b"|")[9].decode()
    assert ack["MSA"][2] == control  # MSA-2 names the message answered
    assert ack["ERR"][3].split("^")[0] == hl7_code
    assert ack["ERR"][4] == "E"
    assert ack["ERR"][8]  # the reason, in words
    assert "Ram" not in "|".join(ack["ERR"])
    assert "Conchita" not in "|".join(ack["ERR"])
    assert row_counts() == before


def test_a_frame_without_its_end_block_is_refused(listener):
    before = row_counts()
    with listener.connect() as sock:
        # A start block inside a frame: the first frame never ended.
        sock.sendall(START + message("conchita_a01") + START + b"MSH|^~\\&|X|Y")
        ack = parse_ack(read_frame(sock))
        assert ack["MSA"][1:3] == ["AR", "MSG-0001"]
        assert "end block" in ack["ERR"][8]
        # The stream ends inside the second one: answered before the connection closes.
        sock.shutdown(socket.SHUT_WR)
        ack = parse_ack(read_frame(sock))
        assert ack["MSA"][1] == "AR"
    assert row_counts() == before


def test_an_oversized_message_is_refused_and_the_connection_goes_on(db_url, monkeypatch):
    monkeypatch.setenv("CHARTDESK_HL7_MAX_MESSAGE_BYTES", "1024")
    get_settings.cache_clear()
    before = row_counts()
    with Listener() as listener, listener.connect() as sock:
        big = message("conchita_t02")
        assert len(big) > 1024
        ack = send(sock, big)
        assert ack["MSA"][1:3] == ["AR", "MSG-0002"]
        assert "limit" in ack["ERR"][8]
        assert row_counts() == before
        # Streamed in pieces without an end block for a while: refused once over the limit.
        sock.sendall(START + big[:800])
        time.sleep(0.1)
        sock.sendall(big[800:] + b"x" * 2048 + END)
        assert parse_ack(read_frame(sock))["MSA"][1] == "AR"
        assert send(sock, message("conchita_a01"))["MSA"][1] == "AA"
        # Oversized and never ended, then a new frame: refused, and the new one answered.
        sock.sendall(START + b"x" * 2048)
        assert parse_ack(read_frame(sock))["MSA"][1] == "AR"
        sock.sendall(START + message("conchita_a03") + END)
        assert parse_ack(read_frame(sock))["MSA"][1:3] == ["AA", "MSG-0003"]


def test_a_silent_client_is_dropped_and_others_are_served(db_url, monkeypatch):
    monkeypatch.setenv("CHARTDESK_HL7_READ_TIMEOUT_SECONDS", "0.5")
    get_settings.cache_clear()
    with Listener() as listener:
        silent = listener.connect()
        stalled = listener.connect()
        stalled.sendall(START + b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|STALL-1|P|2.5.1")
        # Meanwhile another client is served at once.
        (ack,) = deliver(listener, message("conchita_a01"))
        assert ack["MSA"][1] == "AA"
        started = time.monotonic()
        assert silent.recv(10) == b""  # dropped after the read timeout
        assert time.monotonic() - started < 5
        # The one that stalled halfway is told why before it is dropped.
        stalled_ack = parse_ack(read_frame(stalled))
        assert stalled_ack["MSA"][1:3] == ["AR", "STALL-1"]
        silent.close()
        stalled.close()


def test_senders_outside_the_allow_list_are_refused(db_url, monkeypatch):
    monkeypatch.setenv("CHARTDESK_HL7_ALLOWED_SENDERS", '["OTHER-HOSPITAL"]')
    get_settings.cache_clear()
    before = row_counts()
    with Listener() as listener:
        (ack,) = deliver(listener, message("conchita_a01"))
        assert ack["MSA"][1] == "AR"
        assert "not allowed" in ack["ERR"][8]
        assert row_counts() == before
    monkeypatch.setenv("CHARTDESK_HL7_ALLOWED_SENDERS", '["HILLTOWN"]')
    get_settings.cache_clear()
    with Listener() as listener:
        (ack,) = deliver(listener, message("conchita_a01"))
        assert ack["MSA"][1] == "AA"


CANCEL = {"ADT^A01^ADT_A01": "ADT^A11^ADT_A09", "MSG-0001": "MSG-0011"}


def test_a11_cancels_an_uncoded_visit_and_is_refused_once_coded(listener, session):
    deliver(listener, message("conchita_a01"))
    (ack,) = deliver(listener, message("conchita_a01", **CANCEL))
    assert ack["MSA"][1] == "AA"
    item = session.exec(select(WorkItem)).one()
    assert item.status == Status.cancelled
    session.rollback()  # SQLite: our read transaction holds the write lock the listener needs

    # Another visit, coded: its cancellation is refused.
    other = {VISIT: "0e7e2b8c-visit-2", "MSG-0001": "MSG-0101"}
    deliver(listener, message("conchita_a01", **other))
    session.expire_all()
    coded = session.exec(select(WorkItem).where(WorkItem.status == Status.ready)).one()
    coded.status = Status.ready_for_billing
    coded.coded_at = coded.created_at
    session.add(coded)
    session.commit()
    before = row_counts()
    cancel_other = {
        VISIT: "0e7e2b8c-visit-2",
        "ADT^A01^ADT_A01": "ADT^A11^ADT_A09",
        "MSG-0001": "MSG-0111",
    }
    (ack,) = deliver(listener, message("conchita_a01", **cancel_other))
    assert ack["MSA"][1] == "AE"
    assert "already coded" in ack["ERR"][8]
    assert row_counts() == before


def test_a13_undoes_the_discharge(listener, session):
    deliver(listener, message("conchita_a01"), message("conchita_a03"))
    a13 = message(
        "conchita_a03",
        **{
            "ADT^A03^ADT_A03": "ADT^A13^ADT_A01",
            "MSG-0003": "MSG-0013",
            "|20241026010816+0000": "|",
        },
    )
    (ack,) = deliver(listener, a13)
    assert ack["MSA"][1] == "AA"
    from server.models import Encounter

    assert session.exec(select(Encounter)).one().end_at is None


def test_escape_sequences_and_text_notes_of_an_oru(listener, session):
    deliver(listener, message("conchita_a01"))
    oru = (
        "MSH|^~\\&|LAB|HILLTOWN|CHARTDESK|CODING|20241026011000+0000||ORU^R01^ORU_R01|LAB-1|P|2.5.1\r"
        f"PID|1||0580b365-60f4-faeb-30d1-7107ebd06450^^^^MR||Ramón841^Conchita9\r"
        f"PV1|1|O|||||||||||||||||{VISIT}^^^&https://github.com/synthetichealth/synthea&URI\r"
        "OBR|1||R-1|11502-2^Laboratory report^LN|||20241026010500+0000\r"
        "OBX|1|FT|11502-2^Laboratory report^LN||Bilirubin 5\\S\\10 \\T\\ stable\\.br\\"
        "Line two \\F\\ piped \\E\\ done\\X41\\||||||F\r"
        "OBX|2|TX|11502-2^Laboratory report^LN||third line~fourth line||||||F\r"
        "OBX|3|NM|1975-2^Bilirubin^LN||5.1|mg/dL|||||F\r"
    ).encode()
    (ack,) = deliver(listener, oru)
    assert ack["MSA"][1] == "AA", ack
    reader = make_user("hl7reader", "biller")
    item = session.exec(select(WorkItem)).one()
    item.status = Status.ready_for_billing
    session.add(item)
    session.commit()
    from tests.support.factories import actor_of

    record = records_service.open_record(
        session=session,
        actor=actor_of(reader, "biller"),
        work_item_id=item.id,
        purpose="HPAYMT",
        view="billing",
    ).record
    (doc,) = record.documents
    assert doc.text == (
        "Bilirubin 5^10 & stable\nLine two | piped \\ doneA\nthird line\nfourth line"
    )
    assert (doc.title, doc.type) == ("Laboratory report", "11502-2")
    assert record.payer is not None
    assert record.payer.name == "Blue Cross Blue Shield"
    assert record.payer.payer_id == "BCBS01"  # IN1-3, the insurance company id: 837 2010BB


def test_import_takes_hl7_files(db_url, session):
    from typer.testing import CliRunner

    from server.cli import app

    result = CliRunner().invoke(app, ["import", str(DATA / "conchita_visit.hl7")])
    assert result.exit_code == 0, result.output
    assert "created 1, duplicates 0, rejected 0, updated 2" in result.output
    again = CliRunner().invoke(app, ["import", str(DATA / "conchita_visit.hl7")])
    assert "created 0, duplicates 3, rejected 0" in again.output
    assert len(session.exec(select(WorkItem)).all()) == 1


def test_metrics_count_messages_by_type_and_reason_without_patient_data(listener, client):
    deliver(listener, message("conchita_a01"), message("conchita_t02"))
    deliver(listener, message("conchita_a01", **{"Ramón841^": "Ram\\Q\\ón841^"}))
    text = client.get("/metrics").text
    assert 'chartdesk_hl7_messages_accepted_total{type="ADT^A01"}' in text
    assert 'chartdesk_hl7_messages_accepted_total{type="MDM^T02"}' in text
    assert 'chartdesk_hl7_messages_rejected_total{ack="AE",reason="data-type-error"}' in text
    assert "chartdesk_hl7_ack_seconds_count" in text
    for secret in ("Ram", "Conchita", "0580b365", "MSG-0001", "HILLTOWN"):
        assert secret not in metrics.metrics_text()


def test_no_plaintext_at_rest_or_in_logs_after_hl7_ingest(
    listener, make_client, db_url, pg_cluster, caplog
):
    """THE PLAINTEXT SCAN (tests/test_records_plaintext.py) over what came in by HL7."""
    import logging

    from tests.support.records import dump_database, facts
    from tests.test_records_plaintext import _needles

    caplog.set_level(logging.DEBUG)
    acks = deliver(
        listener, message("conchita_a01"), message("conchita_t02"), message("conchita_a03")
    )
    assert [a["MSA"][1] for a in acks] == ["AA", "AA", "AA"]
    deliver(listener, message("conchita_t02"))  # a resend: the duplicate path too
    deliver(listener, message("conchita_a01", **{"Ramón841^": "Ram\\Q\\ón841^"}))  # refused
    chart = _claim_and_view(make_client)
    assert chart["patient"]["name"] == "Conchita9 Marilu588 Ramón841"

    f = facts(load(fixture_files()[0].parent / CONCHITA))
    exact, variants = _needles([f])
    # What only the HL7 messages carry: attending, address, phone (all sealed).
    exact += ["Aranda843", "Barbara209", "978 Rohan Glen", "555-566-6755", "Belchertown"]
    note_line = "Conchita9 is a newborn hispanic white female."
    assert note_line in chart["documents"][0]["text"]
    exact.append(note_line)
    dump = dump_database(db_url, pg_cluster)
    assert b"hl7:SYNTHEA-EHR@HILLTOWN" in dump  # the audit log's actor: the sending system
    assert b"HILLTOWN COMMUNITY HEALTH CENTERS INC" in dump  # routing fields are in clear
    assert [n for n in exact + variants if n.encode() in dump] == []
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert [n for n in exact + variants if n in logged] == []


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for 127.0.0.1."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "hl7.crt", folder / "hl7.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls_when_a_certificate_is_configured(db_url, monkeypatch, tmp_path):
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    monkeypatch.setenv("CHARTDESK_HL7_TLS_CERT_FILE", str(cert_file))
    monkeypatch.setenv("CHARTDESK_HL7_TLS_KEY_FILE", str(key_file))
    get_settings.cache_clear()
    client_context = ssl.create_default_context(cafile=str(cert_file))
    with Listener() as listener:
        with client_context.wrap_socket(listener.connect(), server_hostname="127.0.0.1") as tls:
            assert send(tls, message("conchita_a01"))["MSA"][1] == "AA"
        # Plain TCP on a TLS listener gets no ACK; the listener keeps serving.
        with listener.connect() as plain:
            plain.sendall(START + message("conchita_a01") + END)
            reply = b""
            while chunk := plain.recv(4096):
                reply += chunk
            assert START not in reply  # the handshake failed: closed, no ACK
        with client_context.wrap_socket(listener.connect(), server_hostname="127.0.0.1") as tls:
            assert send(tls, message("conchita_a03"))["MSA"][1] == "AA"


def test_two_listeners_on_one_database_apply_a_message_once(db_url, session):
    from concurrent.futures import ThreadPoolExecutor

    with Listener() as one, Listener() as two, ThreadPoolExecutor(8) as pool:
        sends = [pool.submit(deliver, lst, message("conchita_a01")) for lst in [one, two] * 4]
        answers = [f.result()[0]["MSA"][1] for f in sends]
    assert answers == ["AA"] * 8
    assert len(session.exec(select(WorkItem)).all()) == 1
    assert len(session.exec(select(Hl7Message)).all()) == 1


def test_the_listen_command_serves_as_its_own_process(db_url, tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.pgcluster import free_port

    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "CHARTDESK_DATABASE_URL": db_url}
    command = [sys.executable, "-m", "server.cli", "hl7", "listen", "--port", str(port)]
    command += ["--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        with sock:
            assert send(sock, message("conchita_a01"))["MSA"][1] == "AA"
        with socket.create_connection(("127.0.0.1", metrics_port), timeout=10) as http:
            http.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := http.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        assert b'chartdesk_hl7_messages_accepted_total{type="ADT^A01"} 1' in reply
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_hl7_visits_are_routed_and_audited_with_ids_only(listener, make_client, session):
    from server.models import AuditEvent, Queue
    from tests.support.queue import ensure_queue

    ensure_queue("hilltown")
    boss = make_client()
    sign_in(boss, make_user("boss", "supervisor"))
    rule = {"facility": "hilltown community health centers inc", "queue": "hilltown"}
    assert boss.post("/api/v1/routing-rules", json=rule).status_code == 201
    deliver(listener, message("conchita_a01"), message("conchita_t02"))
    item = session.exec(select(WorkItem)).one()
    assert session.get(Queue, item.queue_id).name == "hilltown"
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "ingest")).all()
    assert [e.actor for e in events] == ["hl7:SYNTHEA-EHR@HILLTOWN"] * 2
    assert {e.actor_kind for e in events} == {"system"}
    assert {e.work_item_id for e in events} == {item.id}
    assert events[0].source_ip == "127.0.0.1"
    assert "hl7 ADT^A01" in events[0].detail
    assert "hl7 MDM^T02" in events[1].detail
    assert "documents+1" in events[1].detail


# ---------------------------------------------------------------- review findings


def test_two_feeds_of_one_facility_numbering_alike_do_not_collide(listener, session):
    """Control ids are unique per sending system (application + facility), not per facility."""
    (adt,) = deliver(listener, message("conchita_a01"))
    # The transcription feed's message carries the ADT feed's control id.
    note = message("conchita_t02", **{"SYNTHEA-EHR": "TRANSCRIPTION", "MSG-0002": "MSG-0001"})
    (mdm,) = deliver(listener, note)
    assert adt["MSA"][1] == mdm["MSA"][1] == "AA"
    assert len(session.exec(select(Hl7Message)).all()) == 2


def test_an_update_naming_another_mrn_is_refused_and_changes_nothing(listener):
    deliver(listener, message("conchita_a01"))
    before = row_counts()
    other_mrn = {
        "ADT^A01^ADT_A01": "ADT^A08^ADT_A01",
        "MSG-0001": "MSG-0008",
        "0580b365-60f4-faeb-30d1-7107ebd06450": "11111111-2222-3333-4444-555555555555",
    }
    (ack,) = deliver(listener, message("conchita_a01", **other_mrn))
    assert ack["MSA"][1] == "AE"
    assert "another MRN" in ack["ERR"][8]
    assert row_counts() == before


def test_an_update_of_a_coded_chart_is_refused(listener, session):
    deliver(listener, message("conchita_a01"))
    item = session.exec(select(WorkItem)).one()
    item.status = Status.ready_for_billing
    item.coded_at = item.created_at
    session.add(item)
    session.commit()
    before = row_counts()
    update = {"ADT^A01^ADT_A01": "ADT^A08^ADT_A01", "MSG-0001": "MSG-0018"}
    (ack,) = deliver(listener, message("conchita_a01", **update))
    assert ack["MSA"][1] == "AE"
    assert "already coded" in ack["ERR"][8]
    assert row_counts() == before


def test_peers_outside_the_allowed_addresses_are_closed_before_a_byte(db_url, monkeypatch):
    monkeypatch.setenv("CHARTDESK_HL7_ALLOWED_PEERS", '["10.9.8.0/24"]')
    get_settings.cache_clear()
    before = row_counts()
    with Listener() as listener, listener.connect() as sock:
        try:
            sock.sendall(START + message("conchita_a01") + END)
            answer = sock.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # closed, nothing answered
    assert row_counts() == before
    monkeypatch.setenv("CHARTDESK_HL7_ALLOWED_PEERS", '["127.0.0.0/8"]')
    get_settings.cache_clear()
    with Listener() as listener:
        (ack,) = deliver(listener, message("conchita_a01"))
        assert ack["MSA"][1] == "AA"


def test_listening_beyond_loopback_needs_peers_or_client_certificates(monkeypatch):
    with pytest.raises(ValueError, match="CHARTDESK_HL7_ALLOWED_PEERS"):
        mllp.check_exposure("0.0.0.0", None)  # noqa: S104 - what is being refused
    mllp.check_exposure("127.0.0.1", None)
    monkeypatch.setenv("CHARTDESK_HL7_ALLOWED_PEERS", '["10.0.0.5"]')
    get_settings.cache_clear()
    mllp.check_exposure("0.0.0.0", None)  # noqa: S104
