"""bench/loadgen.py's open loop: arrivals keep their schedule, and queueing shows in latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bench.loadgen import Conn, Load, run_load, run_open, timed


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the bench's client expects

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        time.sleep(0.05)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def slow_port() -> Iterator[int]:
    """An HTTP server answering each request after 50 ms."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


async def _get(c: Conn, load: Load) -> None:
    await timed(load, c, "GET", "/")


def _own_thread(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a load generator as the bench does, in a thread with no event loop of its own
    (in a full test run the browser tests' Playwright keeps a loop on the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run, *args, **kwargs).result()


def test_open_loop_counts_waiting_for_a_connection_in_the_latency(slow_port: int) -> None:
    # 10 arrivals 20 ms apart on one connection that takes 50 ms each: they queue, and the
    # last one waits for the nine before it (~0.5 s after its due time), not just 50 ms.
    load = _own_thread(run_open, "127.0.0.1", slow_port, [(None, _get)], rate=50, seconds=0.2)
    assert load.count == 10
    assert load.dropped == 0
    assert load.offered == 50
    assert min(load.latencies) >= 0.045
    assert max(load.latencies) >= 0.3


def test_closed_loop_latency_is_only_the_request(slow_port: int) -> None:
    (load,) = _own_thread(run_load, "127.0.0.1", slow_port, [(None, _get)], seconds=0.3)
    assert load.count >= 3
    assert max(load.latencies) < 0.3
