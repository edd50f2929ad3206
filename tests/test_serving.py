"""How `chartdesk serve` answers on the wire: Nagle's algorithm is off on every connection.

With it on, a kept-alive connection's response body (Starlette's second write) waited for the
client's delayed ACK, about 40 ms per request. asyncio only turns it off for sockets whose
`proto` is IPPROTO_TCP, and the listening socket uvicorn shares with its workers says 0.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from server.config import Settings
from server.db import get_engine
from server.web.protocol import NoDelayHttpToolsProtocol
from tests.support.pgcluster import free_port


async def _ok(scope: Any, receive: Any, send: Any) -> None:  # a minimal ASGI app
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _nodelay_of_accepted(protocol_class: type[asyncio.Protocol]) -> int:
    """TCP_NODELAY on the server side of one connection accepted the way uvicorn does."""
    config = Config(_ok, http=protocol_class, log_level="warning", lifespan="off")
    config.load()
    state = ServerState()
    seen: list[int] = []

    async def main() -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, like uvicorn's
        listener.bind(("127.0.0.1", 0))

        def made() -> asyncio.Protocol:
            protocol = protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]
            original = protocol.connection_made

            def connection_made(transport: Any) -> None:
                original(transport)
                sock = transport.get_extra_info("socket")
                seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

            protocol.connection_made = connection_made  # type: ignore[method-assign]
            return protocol

        server = await asyncio.get_running_loop().create_server(made, sock=listener)
        port = listener.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.close()
        server.close()
        await server.wait_closed()

    # In a thread of its own: after the browser tests, pytest's main thread has a running
    # loop (Playwright's), and asyncio.run refuses to nest.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(main())).result()
    return seen[0]


def test_serve_turns_nagle_off_on_accepted_connections() -> None:
    assert _nodelay_of_accepted(NoDelayHttpToolsProtocol) != 0


def test_without_it_uvicorn_leaves_nagle_on() -> None:
    """The reason the subclass exists; if uvicorn or asyncio fixes it, the subclass can go."""
    if _nodelay_of_accepted(HttpToolsProtocol) != 0:
        pytest.skip("this uvicorn/asyncio already sets TCP_NODELAY on proto-0 sockets")
    assert _nodelay_of_accepted(HttpToolsProtocol) == 0


def test_serve_uses_the_no_delay_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    from server import cli

    captured: dict[str, Any] = {}
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: captured.update(kw))
    monkeypatch.setattr("server.migrate.check_current", lambda _engine: None)
    cli._serve("127.0.0.1", 0, 1)
    assert captured["http"] is NoDelayHttpToolsProtocol


@pytest.mark.parametrize(
    ("trusted", "recorded"),
    [(None, "127.0.0.1"), ('["127.0.0.1"]', "203.0.113.9")],
    ids=["default-trusts-no-proxy", "listed-proxy-is-believed"],
)
def test_serve_believes_x_forwarded_for_only_from_trusted_proxies(
    db_url: str, keyring: Path, trusted: str | None, recorded: str
) -> None:
    """Any local process could otherwise forge the audit source address (and with it dodge
    the per-address sign-in limit) by sending X-Forwarded-For from 127.0.0.1."""
    port = free_port()
    env = {
        **os.environ,
        "CHARTDESK_DATABASE_URL": db_url,
        "CHARTDESK_KEYRING_FILE": str(keyring),
        "CHARTDESK_ENV": "development",
        "CHARTDESK_AUDIT_SEAL_INTERVAL_SECONDS": "0",
    }
    env.pop("CHARTDESK_TRUSTED_PROXIES", None)
    if trusted is not None:
        env["CHARTDESK_TRUSTED_PROXIES"] = trusted
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "chartdesk serve exited"
            assert time.monotonic() < deadline, "chartdesk serve did not start"
            time.sleep(0.2)
        r = httpx.post(
            f"{url}/api/v1/session",
            json={"username": "nobody", "password": "x", "totp": "000000"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    with get_engine().connect() as conn:
        ips = conn.execute(
            text("SELECT source_ip FROM audit_event WHERE action = 'sign-in-failed'")
        ).scalars()
        assert list(ips) == [recorded]


def test_trusted_proxies_must_be_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTDESK_TRUSTED_PROXIES", '["10.0.0.0/8", "::1", "192.0.2.7"]')
    assert Settings().trusted_proxies == ["10.0.0.0/8", "::1", "192.0.2.7"]
    monkeypatch.setenv("CHARTDESK_TRUSTED_PROXIES", '["*"]')
    with pytest.raises(ValidationError, match="not an IP address"):
        Settings()


def test_start_up_freezes_what_it_built_out_of_full_collections() -> None:
    """A served process builds the code index at start-up, then freezes it (gc.freeze): a
    full garbage collection then walks only what requests left behind, not the index's
    900,000 objects (each pass held every request of the process for up to 330 ms). In a
    process of its own: freezing the test process would keep its garbage."""
    import subprocess
    import sys

    probe = (
        "import gc\n"
        "from server.main import warm_start\n"
        "warm_start()\n"
        "print(gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    frozen, tracked = int(out[0]), int(out[1])
    assert frozen > 500_000  # the index and the rest of start-up
    assert tracked < frozen // 10  # what a full collection still walks
