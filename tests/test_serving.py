"""How `chartdesk serve` answers on the wire: Nagle's algorithm is off on every connection.

With it on, a kept-alive connection's response body (Starlette's second write) waited for the
client's delayed ACK, about 40 ms per request. asyncio only turns it off for sockets whose
`proto` is IPPROTO_TCP, and the listening socket uvicorn shares with its workers says 0.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from server.web.protocol import NoDelayHttpToolsProtocol


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
