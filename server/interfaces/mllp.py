"""The MLLP listener: HL7 v2 messages framed 0x0B ... 0x1C 0x0D over TCP (or TLS).

One asyncio task per connection reads frames and answers each with its ACK before reading
the next (MLLP is one message, one answer). The database work runs in a thread
(`asyncio.to_thread`), never on the event loop, so a slow message or a slow client holds
up only its own connection. Per connection:

- every read waits at most CHARTDESK_HL7_READ_TIMEOUT_SECONDS: a client that connects and
  sends nothing, or stops halfway, is dropped (halfway: answered AR first);
- a frame over CHARTDESK_HL7_MAX_MESSAGE_BYTES is answered AR and skipped to its end block;
- a start block inside a frame, or the connection ending inside one, means the frame had
  no end block: answered AR; bytes outside frames are ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections.abc import Awaitable, Callable

from server.config import get_settings
from server.interfaces import metrics, service

log = logging.getLogger("chartdesk.hl7")

START = b"\x0b"
END = b"\x1c\x0d"
CHUNK = 64 * 1024

Handler = Callable[[bytes, str | None, float], bytes]


def frame(payload: bytes) -> bytes:
    """One MLLP frame around `payload`."""
    return START + payload + END


def tls_context() -> ssl.SSLContext | None:
    """A server TLS context from CHARTDESK_HL7_TLS_CERT_FILE/_KEY_FILE (None: plain TCP)."""
    settings = get_settings()
    if settings.hl7_tls_cert_file is None and settings.hl7_tls_key_file is None:
        return None
    if settings.hl7_tls_cert_file is None or settings.hl7_tls_key_file is None:
        raise ValueError("set both CHARTDESK_HL7_TLS_CERT_FILE and CHARTDESK_HL7_TLS_KEY_FILE")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.hl7_tls_cert_file, settings.hl7_tls_key_file)
    if settings.hl7_tls_client_ca_file is not None:  # mutual TLS: the engine proves who it is
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(settings.hl7_tls_client_ca_file))
    return context


def check_exposure(host: str, context: ssl.SSLContext | None) -> None:
    """Refuse to listen beyond loopback with nothing to tell the interface engine from
    anyone else: CHARTDESK_HL7_ALLOWED_PEERS or client certificates are required there."""
    settings = get_settings()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    mutual = context is not None and context.verify_mode == ssl.CERT_REQUIRED
    if not loopback and not settings.hl7_allowed_peers and not mutual:
        raise ValueError(
            f"listening on {host} would take HL7 from anyone who reaches the port: set "
            "CHARTDESK_HL7_ALLOWED_PEERS (the interface engine's addresses) or "
            "CHARTDESK_HL7_TLS_CLIENT_CA_FILE (client certificates)"
        )


def peer_allowed(peer: str | None) -> bool:
    """Whether CHARTDESK_HL7_ALLOWED_PEERS (empty: any) lets this address connect."""
    allowed = get_settings().hl7_allowed_peers
    if not allowed:
        return True
    if peer is None:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def _apply(raw: bytes, peer: str | None, started: float) -> bytes:
    return service.handle(raw, peer=peer, started=started)


class Connection:
    """One client: reads its frames, answers each, and never lets it hurt the others."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        handler: Handler = _apply,
    ) -> None:
        settings = get_settings()
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.timeout = settings.hl7_read_timeout_seconds
        self.limit = settings.hl7_max_message_bytes
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.buffer = bytearray()
        self.scanned = 1  # the open frame is searched for blocks from here (not from 1 again)

    async def _read(self) -> bytes:
        """The next bytes; b"" at the end of the stream; TimeoutError after the timeout."""
        return await asyncio.wait_for(self.reader.read(CHUNK), self.timeout)

    async def _send(self, ack: bytes) -> None:
        self.writer.write(frame(ack))
        await self.writer.drain()

    async def _refuse(self, partial: bytes, message: str, reason: str) -> None:
        await self._send(service.refuse(partial, message=message, reason=reason))

    async def _skip_to_end(self) -> bool:
        """Drop an oversized frame up to its end block (or the next frame's start block, if
        it never ends); False if the stream ended first."""
        del self.buffer[:1]  # the oversized frame's own start block
        while True:
            ends = [at for at in (self.buffer.find(END), self.buffer.find(START)) if at >= 0]
            if ends:
                cut = min(ends)
                del self.buffer[: cut + (len(END) if self.buffer[cut:].startswith(END) else 0)]
                return True
            del self.buffer[:-1]  # an end block may be split across reads
            chunk = await self._read()
            if not chunk:
                return False
            self.buffer += chunk

    async def run(self) -> None:
        """Serve this connection until the client leaves, stalls or breaks the framing."""
        if not peer_allowed(self.peer):  # closed before a byte is read or answered
            log.warning("hl7 connection refused: peer not in CHARTDESK_HL7_ALLOWED_PEERS")
            metrics.count_refused_peer()
            self.writer.close()
            return
        try:
            await self._serve()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            # The listener is shutting down: this connection task ends here, quietly (asyncio
            # would otherwise report the cancelled task from its stream callback).
            pass
        except Exception as exc:  # noqa: BLE001 - one connection's failure stays its own
            log.error("hl7 connection failed: %s", type(exc).__name__)
        finally:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 5)
            except (TimeoutError, ConnectionError, ssl.SSLError, OSError):
                pass

    async def _serve(self) -> None:
        while True:
            start = self.buffer.find(START)
            if start < 0:
                self.buffer.clear()  # bytes between frames: ignored
                self.scanned = 1
            else:
                del self.buffer[:start]
                from_ = self.scanned if start == 0 else 1
                end = self.buffer.find(END, max(1, from_ - 1))
                restart = self.buffer.find(START, from_)
                self.scanned = len(self.buffer)
                if restart >= 0 and (end < 0 or restart < end):
                    await self._refuse(
                        bytes(self.buffer[1:restart]),
                        "The frame ended without its end block (0x1C 0x0D); nothing was stored.",
                        "frame-without-end-block",
                    )
                    del self.buffer[:restart]
                    self.scanned = 1
                    continue
                if end >= 0:
                    payload = bytes(self.buffer[1:end])
                    del self.buffer[: end + len(END)]
                    self.scanned = 1
                    if len(payload) > self.limit:
                        await self._too_large(payload)
                        continue
                    started = time.perf_counter()
                    ack = await asyncio.to_thread(self.handler, payload, self.peer, started)
                    await self._send(ack)
                    continue
                if len(self.buffer) - 1 > self.limit:
                    await self._too_large(bytes(self.buffer[1:4097]))
                    if not await self._skip_to_end():
                        return
                    self.scanned = 1
                    continue
            try:
                chunk = await self._read()
            except TimeoutError:
                await self._incomplete()
                raise
            if not chunk:
                await self._incomplete()
                return
            self.buffer += chunk

    async def _too_large(self, head: bytes) -> None:
        await self._refuse(
            head,
            f"The message is over the {self.limit} byte limit; nothing was stored.",
            "message-too-large",
        )

    async def _incomplete(self) -> None:
        """The stream ended or stalled inside a frame: answer AR if a frame was open."""
        if self.buffer.startswith(START):
            await self._refuse(
                bytes(self.buffer[1:4097]),
                "The frame ended without its end block (0x1C 0x0D); nothing was stored.",
                "frame-without-end-block",
            )
            self.buffer.clear()


def connection_handler(
    handler: Handler = _apply,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """The per-connection callback for `asyncio.start_server`."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection to its end."""
        await Connection(reader, writer, handler=handler).run()

    return on_connect


async def start(host: str, port: int, *, context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Start listening (port 0: any free port; see `server.sockets`)."""
    return await asyncio.start_server(
        connection_handler(), host, port, ssl=context, limit=CHUNK * 2
    )


async def _metrics_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    from server.web.middleware import metrics_text

    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = metrics_text().encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def start_metrics(host: str, port: int) -> asyncio.Server:
    """A tiny HTTP endpoint answering every request with this process's /metrics text."""
    return await asyncio.start_server(_metrics_reply, host, port)
