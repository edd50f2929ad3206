"""HL7 v2 over MLLP beside the FHIR endpoint, on the same encounters (not a test).

A throwaway PostgreSQL cluster (durable settings), `chartdesk serve --workers 2` and one
`chartdesk hl7 listen`, one keyring. N synthetic encounters, each with one note, are sent
two ways by C concurrent clients: as a FHIR transaction bundle (Patient, Encounter,
DocumentReference) to `POST /api/v1/fhir`, and as `ADT^A01` + `MDM^T02` (the note as base64
ED) over MLLP, under other visit numbers with the same content. It reports encounters per
second, the latency of each request / each message to its ACK (p50, p99), and the servers'
CPU seconds per encounter, then writes bench/results/hl7-latest.md.

    .venv/bin/python -m bench.hl7 [--encounters N] [--clients C]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.server import Server, cpu_seconds, keys_init
from server.migrate import upgrade
from tests.support.pgcluster import free_port, start_cluster

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "urn:oid:2.16.840.1.113883.3.999.77"
NOTE = (
    "# Chief Complaint\nProductive cough for three days, low-grade fever.\n\n"
    "# History of Present Illness\n" + "Patient reports intermittent symptoms. " * 30 + "\n\n"
    "# Assessment and Plan\nAcute bronchitis. Supportive care; return if worse.\n"
)
START, END = b"\x0b", b"\x1c\x0d"


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile of xs (nearest rank), in milliseconds."""
    s = sorted(xs)
    return 1000 * s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] if s else float("nan")


def _when(i: int) -> tuple[str, str, str]:
    day = 1 + i % 28
    return f"2026-10-{day:02d}T09:30:00Z", f"2026-10-{day:02d}T10:10:00Z", f"202610{day:02d}"


def bundle(i: int) -> bytes:
    """Encounter i as a FHIR transaction bundle."""
    start, end, _ = _when(i)
    note = base64.b64encode(NOTE.encode()).decode()
    entries = [
        {
            "fullUrl": f"urn:uuid:p-{i}",
            "resource": {
                "resourceType": "Patient",
                "id": f"p-{i}",
                "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": f"MRN{i:07d}"}],
                "name": [{"given": ["Dorian"], "family": f"Feldkamp{i}"}],
                "birthDate": "1961-03-14",
                "gender": "male",
            },
        },
        {
            "fullUrl": f"urn:uuid:e-{i}",
            "resource": {
                "resourceType": "Encounter",
                "id": f"e-{i}",
                "identifier": [{"use": "official", "system": SOURCE, "value": f"F-{i}"}],
                "class": {"code": "AMB"},
                "subject": {"reference": f"urn:uuid:p-{i}"},
                "period": {"start": start, "end": end},
                "serviceProvider": {"display": "BENCH GENERAL HOSPITAL"},
            },
        },
        {
            "fullUrl": f"urn:uuid:d-{i}",
            "resource": {
                "resourceType": "DocumentReference",
                "type": {"coding": [{"code": "34117-2", "display": "History and physical note"}]},
                "date": start,
                "context": {"encounter": [{"reference": f"urn:uuid:e-{i}"}]},
                "content": [{"attachment": {"contentType": "text/plain", "data": note}}],
            },
        },
    ]
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode()


def messages(i: int) -> list[bytes]:
    """Encounter i as ADT^A01 and MDM^T02 (the same content, visit number H-i)."""
    _, _, ymd = _when(i)
    note = base64.b64encode(NOTE.encode()).decode()
    msh = "MSH|^~\\&|EHR|BENCH|CHARTDESK|CODING|{ts}||{kind}|{ctl}|P|2.5.1"
    pid = f"PID|1||MRN{i:07d}^^^^MR||Feldkamp{i}^Dorian||19610314|M"
    pv1 = (
        "PV1|1|O|^^^BENCH GENERAL HOSPITAL"
        + "|" * 16  # PV1-19 next
        + f"H-{i}^^^&{SOURCE}&ISO"
        + "|" * 25
        + f"{ymd}093000+0000|{ymd}101000+0000"
    )
    a01 = [msh.format(ts=f"{ymd}093000", kind="ADT^A01^ADT_A01", ctl=f"A-{i}"), pid, pv1]
    t02 = [
        msh.format(ts=f"{ymd}101000", kind="MDM^T02^MDM_T02", ctl=f"T-{i}"),
        pid,
        pv1,
        f"TXA|1|HP|TX|{ymd}093000+0000",
        f"OBX|1|ED|34117-2^History and physical note^LN||^TEXT^PLAIN^Base64^{note}||||||F",
    ]
    return [("\r".join(a01) + "\r").encode(), ("\r".join(t02) + "\r").encode()]


def _fhir_client(base: str, token: str, ids: list[int]) -> list[float]:
    times = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for i in ids:
            t = time.perf_counter()
            r = client.post("/api/v1/fhir", content=bundle(i))
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
    return times


def _mllp_client(port: int, ids: list[int]) -> list[float]:
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for i in ids:
            for payload in messages(i):
                t = time.perf_counter()
                sock.sendall(START + payload + END)
                ack = b""
                while not ack.endswith(END):
                    chunk = sock.recv(65536)
                    assert chunk, "listener closed the connection"
                    ack += chunk
                times.append(time.perf_counter() - t)
                assert b"MSA|AA|" in ack, ack
    return times


def _phase(clients: int, n: int, work: Any) -> tuple[float, list[float]]:
    shards = [list(range(c, n, clients)) for c in range(clients)]
    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(work, shards))
    return time.perf_counter() - t, [x for r in results for x in r]


def main() -> None:
    """Start everything, send both ways, print and write the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--encounters", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    o = ap.parse_args()
    cluster = start_cluster(fast=False)
    keydir = tempfile.mkdtemp(prefix="chartdesk-bench-keys-")
    listener = None
    server = None
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as c:
            c.execute("CREATE DATABASE bench_hl7")
        url = cluster.url("bench_hl7")
        env = dict(
            os.environ,
            CHARTDESK_DATABASE_URL=url,
            CHARTDESK_ENV="development",
            CHARTDESK_KEYRING_FILE=f"{keydir}/keyring.json",
            CHARTDESK_TOKEN_RATE_PER_MINUTE="1000000",  # noqa: S106 - a rate, not a secret
            CHARTDESK_TOKEN_IP_RATE_PER_MINUTE="1000000",  # noqa: S106 - a rate
            CHARTDESK_WARM_CODE_INDEX="false",
        )
        keys_init(ROOT, env)
        upgrade(url)
        chartdesk = str(Path(sys.executable).parent / "chartdesk")
        made = subprocess.run(
            [chartdesk, "token", "create", "bench", "--scope", "ingest"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        token = made.stdout.strip().splitlines()[-1]
        server = Server(ROOT, env)
        port = free_port()
        listener = subprocess.Popen(
            [chartdesk, "hl7", "listen", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        n, clients = o.encounters, o.clients

        cpu0 = server.cpu()
        fhir_wall, fhir_times = _phase(
            clients, n, lambda ids: _fhir_client(server.base, token, ids)
        )
        fhir_cpu = server.cpu() - cpu0
        cpu0 = cpu_seconds(listener.pid)
        hl7_wall, hl7_times = _phase(clients, n, lambda ids: _mllp_client(port, ids))
        hl7_cpu = cpu_seconds(listener.pid) - cpu0
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait(20)
        if server is not None:
            server.stop()
        cluster.stop()
    rows = [
        "| door | encounters/s | request or message p50 ms | p99 ms | server CPU ms / encounter |",
        "|---|---:|---:|---:|---:|",
        f"| FHIR `POST /api/v1/fhir` (1 bundle / encounter) | {n / fhir_wall:.0f} | "
        f"{pct(fhir_times, 50):.1f} | {pct(fhir_times, 99):.1f} | {1000 * fhir_cpu / n:.1f} |",
        f"| HL7 MLLP (A01 + T02 / encounter), to ACK | {n / hl7_wall:.0f} | "
        f"{pct(hl7_times, 50):.1f} | {pct(hl7_times, 99):.1f} | {1000 * hl7_cpu / n:.1f} |",
    ]
    text = "\n".join(
        [
            "# HL7 v2 over MLLP beside the FHIR endpoint",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {n} encounters with one "
            f"note each, {clients} concurrent clients each way, PostgreSQL 15 with durable "
            f"settings, `chartdesk serve --workers 2` and one `chartdesk hl7 listen`, "
            f"{os.cpu_count()} cores shared with the clients (load average at the end "
            f"{os.getloadavg()[1]:.1f}). Messages/s of HL7 are twice the encounters/s.",
            "",
            *rows,
            "",
        ]
    )
    print(text)  # noqa: T201
    (ROOT / "bench" / "results" / "hl7-latest.md").write_text(text)


if __name__ == "__main__":
    main()
