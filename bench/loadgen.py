"""A small HTTP/1.1 keep-alive client for load generation (asyncio streams, no parsing library).

The load generator shares the machine's 2 cores with the server, so its own CPU cost per
request matters: httpx spends several times the server's CPU per request, which made the
generator, not Chartdesk, the bottleneck. This client writes the request bytes itself and
reads back the status, Content-Length (or chunked) body, nothing else.

Two ways to drive it: `run_load`, closed loops (each client sends its next request when the
last one is answered, so a slow server slows the offered load), and `run_open`, open-loop
arrivals at a fixed rate whatever the server does (latency counted from each arrival's due
time, so time spent waiting for a free connection or behind a late schedule counts).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """Status code and body of one response."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Identity:
    """What a signed-in person sends with every request: the session cookie and CSRF token."""

    cookie: str  # "name=value"
    csrf: str
    username: str = ""


class Conn:
    """One keep-alive connection to the server."""

    def __init__(self, host: str, port: int, identity: Identity | None = None) -> None:
        self.host, self.port, self.identity = host, port, identity
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.extra: dict[str, Any] = {}  # per-client state of the step function

    async def open(self) -> None:
        """Connect (again)."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        """Send one request and read the whole response."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None  # noqa: S101
        assert self.writer is not None  # noqa: S101
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self.identity is not None:
            head.append(f"Cookie: {self.identity.cookie}")
            if method not in ("GET", "HEAD"):
                head.append(f"X-CSRF-Token: {self.identity.csrf}")
        if body is not None:
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(payload)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(parts)
        else:
            data = await self.reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return Reply(status, data)


@dataclass
class Load:
    """Latencies (seconds) of the measured requests, and what the clients collected."""

    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    offered: float = 0.0  # open loop: arrivals per second scheduled
    dropped: int = 0  # open loop: arrivals still unanswered when the phase's grace ran out
    errors: dict[int, int] = field(default_factory=dict)
    seen: list[Any] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many measured requests succeeded."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Successful measured requests per second of wall time."""
        return self.count / self.wall if self.wall else 0.0


Step = Callable[[Conn, Load], Awaitable[None]]
Setup = Callable[[Conn], Awaitable[None]]


async def _run(
    host: str,
    port: int,
    clients: list[tuple[Identity | None, Step]],
    seconds: float,
    setup: Setup | None,
    teardown: Setup | None,
) -> list[Load]:
    loads: dict[int, Load] = {}
    conns = [Conn(host, port, ident) for ident, _ in clients]
    for c in conns:
        await c.open()
        if setup is not None:
            await setup(c)
    stop = time.monotonic() + seconds

    async def client(c: Conn, step: Step) -> None:
        load = loads.setdefault(id(step), Load())
        while time.monotonic() < stop:
            await step(c, load)

    t0 = time.monotonic()
    await asyncio.gather(*(client(c, step) for c, (_, step) in zip(conns, clients, strict=True)))
    wall = time.monotonic() - t0
    for c in conns:
        await c.close()
        if teardown is not None:
            await teardown(c)
    steps = list(dict.fromkeys(id(step) for _, step in clients))
    out = [loads.get(k, Load()) for k in steps]
    for load in out:
        load.wall = wall
    return out


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in the load generator during a phase, one after it.

    The bench process holds what it loaded, and its own full collections took 90-120 ms in
    the middle of load phases (a `gc.callbacks` probe, 2026-11-28): every arrival due in
    that time was sent late, and its latency (counted from the due time) charged to the
    server under test. A phase's garbage is small; it is collected when the phase ends.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def run_load(
    host: str,
    port: int,
    clients: list[tuple[Identity | None, Step]],
    seconds: float,
    *,
    setup: Setup | None = None,
    teardown: Setup | None = None,
) -> list[Load]:
    """Each (identity, step) is one client running `step` in a loop for `seconds`.

    Returns one Load per distinct step function, in order of first appearance.
    """
    with collector_paused():
        return asyncio.run(_run(host, port, clients, seconds, setup, teardown))


async def timed(load: Load, c: Conn, method: str, path: str, body: Any = None) -> Reply:
    """Send a request; record its latency if it succeeded (2xx), else count the status.

    Under `run_open` the latency runs from the arrival's due time (`c.extra["due"]`, taken
    by the first timed request of the step), not from when a connection became free.
    """
    t = c.extra.pop("due", None) or time.perf_counter()
    reply = await c.request(method, path, body)
    if 200 <= reply.status < 300:
        load.latencies.append(time.perf_counter() - t)
    else:
        load.errors[reply.status] = load.errors.get(reply.status, 0) + 1
    return reply


async def _run_open(
    host: str,
    port: int,
    clients: list[tuple[Identity | None, Step]],
    rate: float,
    seconds: float,
    setup: Setup | None,
    teardown: Setup | None,
    grace: float,
) -> Load:
    conns = [Conn(host, port, ident) for ident, _ in clients]
    steps = {id(c): step for c, (_, step) in zip(conns, clients, strict=True)}
    for c in conns:
        await c.open()
        if setup is not None:
            await setup(c)
    free: asyncio.Queue[Conn] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    load = Load(offered=rate)

    async def arrival(due: float) -> None:
        c = await free.get()
        try:
            c.extra["due"] = due
            await steps[id(c)](c, load)
        finally:
            c.extra.pop("due", None)
            free.put_nowait(c)

    tasks: list[asyncio.Task[None]] = []
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for k in range(n):
        due = t0 + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(arrival(due)))
    _, pending = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    load.dropped = len(pending)
    load.wall = time.perf_counter() - t0
    for c in conns:
        await c.close()
        if teardown is not None:
            await teardown(c)
    return load


def run_open(
    host: str,
    port: int,
    clients: list[tuple[Identity | None, Step]],
    rate: float,
    seconds: float,
    *,
    setup: Setup | None = None,
    teardown: Setup | None = None,
    grace: float = 30.0,
) -> Load:
    """Open-loop arrivals: one every 1/`rate` s for `seconds`, each served by the next free
    client (its connection and step); latency from the arrival's due time.

    The clients are only a pool of connections: with enough of them, a slow answer does
    not hold back the next arrival, so queueing shows in the latencies instead of in a lower
    offered rate. Arrivals unanswered `grace` s after the last one are counted as dropped.
    """
    with collector_paused():
        return asyncio.run(_run_open(host, port, clients, rate, seconds, setup, teardown, grace))
