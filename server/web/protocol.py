"""The HTTP protocol `chartdesk serve` runs: uvicorn's httptools parser with Nagle off.

asyncio turns Nagle's algorithm off only for sockets whose `proto` is IPPROTO_TCP, and the
listening socket uvicorn shares between worker processes reports proto 0, so accepted
connections kept Nagle on. Starlette sends a response's headers and its body as two writes;
on a kept-alive connection the body then waited for the client's delayed ACK: about 40 ms
added to every request after a connection's first (measured: /healthz 44 ms vs 2 ms).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once on a TCP connection (TCP_NODELAY)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with TCP_NODELAY set on every accepted connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Turn Nagle off, then let uvicorn take the connection."""
        no_delay(transport)
        super().connection_made(transport)
