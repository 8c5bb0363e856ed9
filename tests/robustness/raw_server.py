"""A 127.0.0.1 HTTP server whose answers misbehave at the byte level, on purpose.

The loopback server (tests/loopback.py) speaks the images contract and builds its whole
answer in memory; this one streams what the loopback server cannot: answers that never
end, and bodies that trickle one byte at a time. Each route is a function writing the
answer; `sent[path]` counts the body bytes the client took before it hung up.

    with RawServer({"/v1/images/variations": endless(b'{"data": "')}) as server:
        ...  # point a client at server.url + "/v1"
        assert server.sent["/v1/images/variations"] < 100 * 2**20
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[["RawServer", BaseHTTPRequestHandler, str], None]
CHUNK = 1024 * 1024


class RawServer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.sent: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.closing = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one answer per connection, ended by closing it

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                route = server.routes.get(self.path)
                self.close_connection = True
                if route is None:
                    self.send_error(404)
                    return
                # The client hanging up is what these tests want to see.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(server, self, self.path)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def count(self, path: str, size: int) -> None:
        with self._lock:
            self.sent[path] += size

    def close(self) -> None:
        self.closing.set()  # ends every trickle and endless body
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def endless(
    prefix: bytes,
    *,
    status: int = 200,
    content_type: str = "application/json",
    declare: bool,
    stop_after: int,
) -> Route:
    """`status`, then `prefix` and "A"s as fast as the client takes them, up to `stop_after`
    bytes (a stand-in for the 2 GB of the attack that keeps a failing test affordable).
    With `declare`, Content-Length announces 2 GiB; without, the body ends at close."""

    def route(server: RawServer, handler: BaseHTTPRequestHandler, path: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        if declare:
            handler.send_header("Content-Length", str(2 * 1024**3))
        handler.end_headers()
        handler.wfile.write(prefix)
        server.count(path, len(prefix))
        filler = b"A" * CHUNK
        while server.sent[path] < stop_after and not server.closing.is_set():
            handler.wfile.write(filler)
            server.count(path, len(filler))

    return route


def trickle(*, every: float, content_type: str = "image/png") -> Route:
    """200 with a 10 kB Content-Length, then one byte every `every` seconds until closed."""

    def route(server: RawServer, handler: BaseHTTPRequestHandler, path: str) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", "10000")
        handler.end_headers()
        handler.wfile.flush()
        while not server.closing.wait(every):
            handler.wfile.write(b"\x89")
            handler.wfile.flush()
            server.count(path, 1)

    return route


def fixed(body: bytes, *, content_type: str = "application/json") -> Route:
    """200 with `body`, like any well-behaved server."""

    def route(server: RawServer, handler: BaseHTTPRequestHandler, path: str) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        server.count(path, len(body))

    return route
