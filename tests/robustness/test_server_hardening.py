"""The project's server under the attacks of issue 14: bombs, damaged metadata, stalled and
slow connections, keys in query strings.

Attacks that depend on how the server is run (connection handling, the access log) go to
`serve()` itself in a subprocess; the others to `create_app` in a thread (test_server's
`running`). The sizes are scaled down; benchmarks/server_load.py runs them at full scale.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import ipy_images as ii
from ipy_images._redact import redact

from .cases import encoded, photo

MB = 1024 * 1024


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def grey16_png(side: int) -> bytes:
    """A black 16-bit greyscale PNG: 7999 px a side is 124 KB, and 128 MB once decoded."""
    row = bytes(1 + 2 * side)  # filter byte, then two bytes a pixel
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)  # 16 bits, greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def png_with_garbage_exif() -> bytes:
    """A good 64x64 PNG with an `eXIf` chunk that is not TIFF data (1.1 KB in all)."""
    good = encoded(photo((64, 64)), "PNG")
    after_header = 8 + 25  # signature, then the IHDR chunk
    return good[:after_header] + chunk(b"eXIf", b"garbage!" * 128) + good[after_header:]


def square_png_cut_short() -> bytes:
    """A PNG whose header says 64x64, square, with its pixel data cut off."""
    return encoded(photo((64, 64)), "PNG")[:60]


@pytest.fixture(scope="module")
def server_root() -> Iterator[str]:
    from test_server import running  # the uvicorn-in-a-thread helper of the server's tests

    with running() as root:
        yield root


def post_image(root: str, image: bytes, name: str = "x.png") -> httpx.Response:
    return httpx.post(
        f"{root}/v1/images/variations",
        files={"image": (name, image, "image/png")},
        data={"size": "256x256", "response_format": "b64_json"},
        timeout=120,
    )


# -- 1. a 16-bit bomb; decoding inside the admission gate -----------------------------------


def test_a_16_bit_png_bomb_is_refused_in_process_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "deep.png"
    bomb.write_bytes(grey16_png(7999))
    assert bomb.stat().st_size < 130_000
    with pytest.raises(ii.InvalidImageError) as caught:
        ii.prepare_image(bomb)
    message = str(caught.value)
    assert message.startswith("deep.png would take 128 MB decoded (7999x7999 pixels of 2 bytes")
    assert "downscale it first" in message


def test_the_server_refuses_a_16_bit_png_bomb(server_root: str) -> None:
    answer = post_image(server_root, grey16_png(7999))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "image"
    assert "128 MB decoded" in error["message"]
    assert httpx.get(f"{server_root}/health").json()["status"] == "ok"


def test_a_full_server_refuses_an_upload_before_decoding_it() -> None:
    """Decoding waits for a slot like generating: when none is free, nothing is decoded.

    A damaged PNG tells the order apart: decoded first it would get 400, not 429.
    """
    from test_server import running

    with running(max_concurrent=1, max_queue=0) as root:

        async def scenario() -> httpx.Response:
            async with httpx.AsyncClient(base_url=root, timeout=120) as http:
                files = {"image": ("a.png", encoded(photo((64, 64)), "PNG"))}
                busy = asyncio.ensure_future(
                    http.post("/v1/images/variations", files=files, data={"size": "256x256"})
                )
                while (await http.get("/health")).json()["in_flight"] == 0:
                    await asyncio.sleep(0.02)
                files = {"image": ("cut.png", square_png_cut_short(), "image/png")}
                refused = await http.post("/v1/images/variations", files=files)
                busy.cancel()
                return refused

        refused = asyncio.run(scenario())
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


# -- 2. an image Pillow cannot fully read ---------------------------------------------------


def test_a_png_with_garbage_exif_is_an_invalid_image_in_process(tmp_path: Path) -> None:
    path = tmp_path / "tagged.png"
    path.write_bytes(png_with_garbage_exif())
    with pytest.raises(ii.InvalidImageError) as caught:
        ii.create_variation(path, backend="local", n=1, size="256x256")
    assert str(caught.value).startswith("tagged.png: its EXIF metadata is damaged")


def test_the_server_answers_400_for_a_png_with_garbage_exif(server_root: str) -> None:
    answer = post_image(server_root, png_with_garbage_exif(), "tagged.png")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "image"
    assert "EXIF metadata is damaged" in error["message"]


# -- serve() in a subprocess -----------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[str]
    root: str
    port: int
    log: list[str] = field(default_factory=list)

    def memory(self, key: str) -> int:
        """VmRSS or VmHWM (the peak) of the server process, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key} in /proc/{self.process.pid}/status")


@contextlib.contextmanager
def served(
    *, descriptors: int | None = None, env: dict[str, str] | None = None, **options: Any
) -> Iterator[Served]:
    """`ipy_images.server.serve(port=0, **options)` in a subprocess, stopped with Ctrl-C."""
    code = (
        "import contextlib, json, sys\nfrom ipy_images.server import serve\n"
        "with contextlib.suppress(KeyboardInterrupt):\n"
        "    serve('127.0.0.1', 0, **json.loads(sys.argv[1]))"
    )

    def limit_descriptors() -> None:
        if descriptors is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    process = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=limit_descriptors,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    if not first.startswith("ipy-images: serving"):
        process.kill()
        raise AssertionError(f"the server did not start: {first!r}{process.stdout.read()}")
    base_url = first.split()[-1]
    server = Served(process, base_url.removesuffix("/v1"), int(base_url.split(":")[-1][:-3]))
    reader = threading.Thread(target=lambda: server.log.extend(process.stdout), daemon=True)
    reader.start()
    try:
        httpx.get(f"{server.root}/health", timeout=30)  # accepting connections now
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=40)
        finally:
            process.kill()
        reader.join(timeout=5)


def stalled_upload(port: int, declared: int, sent: int) -> socket.socket:
    """A connection that declares a `declared`-byte multipart body, sends `sent` bytes of it
    and then stalls."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /v1/images/variations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    sock.sendall(head + part + os.urandom(sent - len(part)))
    return sock


def answer_then_close(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after `within` s."""
    sock.settimeout(within)
    received = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            return received
        received += data
    raise AssertionError(f"still open after {within} s; received {received[:80]!r}")


def settle(server: Served) -> None:
    """Wait until the server has read what was sent: its memory stops changing (5 s at most)."""
    last = server.memory("VmRSS")
    for _ in range(20):
        time.sleep(0.25)
        now = server.memory("VmRSS")
        if abs(now - last) < MB:
            return
        last = now


def health_seconds(root: str) -> float:
    started = time.perf_counter()
    answer = httpx.get(f"{root}/health", timeout=10)
    assert answer.status_code == 200
    return time.perf_counter() - started


# -- 3. stalled bodies, slow connections ----------------------------------------------------


def test_stalled_uploads_hold_little_memory_and_get_408() -> None:
    uploads, declared, sent = 12, 5 * MB, int(4.5 * MB)  # 60 MB: within the 64 MB budget
    with served(read_timeout=2.0) as server:
        before = server.memory("VmRSS")
        sockets = [stalled_upload(server.port, declared, sent) for _ in range(uploads)]
        try:
            assert health_seconds(server.root) < 5  # answering while they stall
            settle(server)
            grown = server.memory("VmHWM") - before
            # Held in memory, the bodies would take 54 MB; spooled, a little of each.
            assert grown < uploads * sent / 4, f"the server grew by {grown / MB:.0f} MB"
            answers = [answer_then_close(sock, within=15) for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b'"code":"request_timeout"' in answer


def test_uploads_beyond_the_shared_budget_are_refused_with_a_whole_answer() -> None:
    """Refused while its body still arrives, an upload gets the whole 429, every time.

    Closing a connection with unread data resets it and can destroy the answer in flight
    (about one try in seven did before the server discarded the rest first).
    """
    from test_server import running

    with running(max_uploading=8 * MB, read_timeout=5.0) as root:
        port = int(root.rsplit(":", 1)[1])
        first = stalled_upload(port, 5 * MB, MB)  # holds 5 MB of the 8 while it stalls
        try:
            refused = [
                httpx.post(
                    f"{root}/v1/images/variations",
                    content=bytes(4 * MB),
                    headers={"content-type": "multipart/form-data; boundary=b"},
                )
                for _ in range(20)
            ]
        finally:
            first.close()
    for second in refused:
        assert second.status_code == 429, second.text
        assert second.headers["retry-after"] == "5"
        assert second.json()["error"]["code"] == "rate_limit_exceeded"


def test_connections_that_never_send_their_headers_are_closed() -> None:
    with served(read_timeout=1.0) as server:
        slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
        try:
            for sock in slow:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127")  # and nothing more
            for sock in slow:
                assert answer_then_close(sock, within=10) == b""
        finally:
            for sock in slow:
                sock.close()


def test_health_answers_while_slow_connections_exceed_the_descriptors() -> None:
    """More slow connections than the server has descriptors: it sheds the oldest."""
    with served(read_timeout=60.0, descriptors=256) as server:
        slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(400)]
        try:
            for sock in slow:
                sock.sendall(b"GET /health HTTP/1.1\r\n")
            assert health_seconds(server.root) < 5
            assert health_seconds(server.root) < 5
        finally:
            for sock in slow:
                sock.close()
    assert "Too many open files" not in "".join(server.log)


# -- 7. keys out of the access log ----------------------------------------------------------


def test_a_key_in_the_query_string_stays_out_of_the_access_log() -> None:
    key = "sk-" + "server-key-9d8c7b6a5f4e3d2c"
    other = "sk-" + "users-openai-key-1a2b3c4d5e6f"
    with served(api_key=key, log_level="info") as server:
        assert httpx.get(f"{server.root}/health?api_key={key}").status_code == 200
        denied = httpx.post(
            f"{server.root}/v1/images/variations?api_key={other}",
            files={"image": ("a.png", encoded(photo((64, 64)), "PNG"))},
        )
        assert denied.status_code == 401
        assert httpx.get(f"{server.root}/v1/files/{key.upper()}.png").status_code == 404
    log = "".join(server.log)
    assert redact(log, key) == log and redact(log, other) == log, log
    assert '"GET /health?... HTTP/1.1" 200' in log  # the request is logged, its query not
    assert '"POST /v1/images/variations?... HTTP/1.1" 401' in log


def test_the_guarded_server_still_generates() -> None:
    with served(read_timeout=2.0) as server:
        answer = post_image(server.root, encoded(photo((64, 64)), "PNG"))
    assert answer.status_code == 200, answer.text
    (item,) = answer.json()["data"]
    assert Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size == (256, 256)
