"""A real OpenAI-images HTTP server on 127.0.0.1 that misbehaves on command.

    with LoopbackServer(api_key="sk-test-1234") as server:
        server.enqueue(Fault.status(429, retry_after="1"), Fault.drop())
        ...  # point the client at server.base_url ("http://127.0.0.1:PORT/v1")
        assert server.requests[-1].file("image").content_type == "image/png"

Endpoints
    POST /v1/images/variations  legacy DALL-E 2 contract (multipart): ``image`` (a PNG file
        part, at most 4 MiB, square, RGB or RGBA), ``model`` (any), ``n`` 1..10, ``size``,
        ``response_format`` (default "url"), ``user``.
    POST /v1/images/edits  GPT-image contract (multipart): ``image`` / ``image[]`` (PNG, WebP
        or JPEG parts, at most 50 MiB each, any aspect), ``prompt`` (required), ``model``
        (gpt-image-*), ``n``, ``size``, ``quality``, ``background``, ``output_format``,
        ``output_compression``, ``input_fidelity``, ``user``, ``mask``. Answers b64_json only,
        encoded in ``output_format``, with ``background``/``output_format``/``quality``/``size``
        resolved (never "auto") and ``usage``.
    GET /files/<token>.png  the images of "url" results;  GET /health  ``{"status": "ok"}``.

Image ``i`` of a result is the (first) input image fitted to the output size and blended with
``TINTS[i % 10]``: deterministic, distinct per index. Bad requests get the OpenAI error body
``{"error": {"message", "type", "param", "code"}}`` with the status OpenAI uses (400; 401 when
``api_key`` is set and the bearer differs, the key masked to its last 4 characters; 404 for
unknown paths). Parameters outside the contract are refused as OpenAI does ("Unknown
parameter"), unless listed in ``extra_fields``. Every response carries ``x-request-id``.

Faults
    ``server.enqueue(*faults)``: every POST to an images endpoint takes the next queued
    ``Fault`` (FIFO) and the server behaves normally once the queue is empty. Status, drop and
    delay faults act before authentication and validation, like a gateway in front of the API;
    the others alter the normal answer (an error answer included, for the body-level ones).
    ``server.latency`` (seconds, settable any time) delays every images request; requests are
    served concurrently, one thread per connection. Kinds, all built by ``Fault`` factories:
    ``status(code, *, message, type, param, error_code, body, retry_after, retry_after_ms,
    headers)``, ``x_should_retry(code, value)``, ``drop()``, ``drop_mid_body()``,
    ``delay(seconds)``, ``slow_body(seconds, pieces=10)``, ``malformed_json()``,
    ``truncated_json()``, and per image (``index=None``: all) ``bad_base64``, ``not_an_image``,
    ``wrong_size``, ``url_404``, ``url_never_ends``.

Inspection
    ``server.requests``: snapshot list of ``RecordedRequest`` (every POST, in arrival order;
    ``.headers`` lower-cased, ``.fields``, ``.files``, ``.file(name)``, ``.authorization``,
    ``.form`` for ``spec.validate_*_request``); ``server.downloads``: paths of GET /files
    requests; ``server.faults_pending``; ``server.open_connections``; ``server.errors``:
    tracebacks of bugs in the server itself (the conftest fixtures assert it stays empty).

``close()`` returns promptly even while connections are stalled: every wait inside the server
ends when it closes, and open sockets are shut down.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import secrets
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import spec
from PIL import Image, ImageOps
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VARIATION_MAX_BYTES = 4 * 1024 * 1024
EDITS_MAX_BYTES = 50 * 1024 * 1024
EDITS_MAX_IMAGES = 16
VARIATION_MODES = ("RGB", "RGBA")
EDITS_MIME_TYPES = {"image/png": "png", "image/webp": "webp", "image/jpeg": "jpeg"}
TINTS = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
TINT_WEIGHT = 0.35
BAD_BASE64 = "not*valid*base64="
NOT_AN_IMAGE = b"this is not an image\n" * 8

_VARIATION_FIELDS = frozenset({"image", "model", "n", "response_format", "size", "user"})
_EDITS_FIELDS = frozenset(
    {"image", "image[]", "mask", "prompt", "model", "n", "size", "quality", "background"}
    | {"output_format", "output_compression", "input_fidelity", "user"}
)
_EDITS_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
_EDITS_INPUT_IMAGE_TOKENS = 323
_NOT_A_SMALL_PNG = "Uploaded image must be a PNG and less than 4 MB."
_ENDPOINTS = ("/v1/images/variations", "/v1/images/edits")
_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", None),
    404: ("Not found.", "invalid_request_error", None),
    429: (
        "Rate limit reached for images per minute. Limit: 5/1min. Current: 6/1min.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def png_bytes(
    size: tuple[int, int] = (64, 64),
    color: tuple[int, ...] = (200, 80, 40),
    mode: str = "RGB",
    *,
    fmt: str = "PNG",
) -> bytes:
    """A solid-colour image file (PNG unless ``fmt`` names another Pillow format)."""
    image = Image.new("RGBA" if len(color) == 4 else "RGB", size, tuple(color))
    out = io.BytesIO()
    image.convert(mode).save(out, format=fmt)
    return out.getvalue()


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None, code: Any = None
) -> dict[str, Any]:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to one images request. Build with the factories.

    ``index`` (image faults only): the result index the fault hits; ``None`` hits every image.
    """

    kind: str
    http_status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    seconds: float = 0.0
    pieces: int = 1
    index: int | None = None

    @classmethod
    def status(
        cls,
        code: int,
        *,
        message: str | None = None,
        type: str | None = None,
        param: str | None = None,
        error_code: str | None = None,
        body: str | bytes | None = None,
        retry_after: str | None = None,
        retry_after_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer ``code`` with the OpenAI error body (defaults per status) or a raw ``body``
        (served as text/html unless it starts with "{"), plus the given headers."""
        extra = {name.lower(): value for name, value in (headers or {}).items()}
        if retry_after is not None:
            extra["retry-after"] = retry_after
        if retry_after_ms is not None:
            extra["retry-after-ms"] = str(retry_after_ms)
        if body is None:
            default_message, default_type, default_code = _DEFAULT_ERRORS.get(
                code, _DEFAULT_ERRORS[500 if code >= 500 else 400]
            )
            error = error_body(
                message or default_message,
                type or default_type,
                param,
                error_code or default_code,
            )
            raw = json.dumps(error).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        if "content-type" not in extra:
            is_json = raw.lstrip().startswith(b"{")
            extra["content-type"] = "application/json" if is_json else "text/html; charset=utf-8"
        return cls("status", http_status=code, headers=tuple(extra.items()), body=raw)

    @classmethod
    def x_should_retry(cls, code: int, value: str) -> Fault:
        """An error status carrying ``x-should-retry: value`` ("true"/"false")."""
        return cls.status(code, headers={"x-should-retry": value})

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without sending anything."""
        return cls("drop")

    @classmethod
    def drop_mid_body(cls) -> Fault:
        """Send the headers (full Content-Length) and half the body, then close."""
        return cls("drop_mid_body")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds``, then answer normally."""
        return cls("delay", seconds=seconds)

    @classmethod
    def slow_body(cls, seconds: float, pieces: int = 10) -> Fault:
        """Send the headers at once, then the body in ``pieces`` parts, each after
        ``seconds / pieces``: many pieces defeat a read timeout, one piece is a plain stall."""
        return cls("slow_body", seconds=seconds, pieces=pieces)

    @classmethod
    def malformed_json(cls) -> Fault:
        """200, application/json, a body that is not JSON."""
        return cls("malformed_json")

    @classmethod
    def truncated_json(cls) -> Fault:
        """200, a complete HTTP message whose JSON body stops halfway."""
        return cls("truncated_json")

    @classmethod
    def bad_base64(cls, index: int | None = None) -> Fault:
        """b64_json results that are not base64 (b64_json results only)."""
        return cls("bad_base64", index=index)

    @classmethod
    def not_an_image(cls, index: int | None = None) -> Fault:
        """Result bytes (b64_json or URL content) that are no image."""
        return cls("not_an_image", index=index)

    @classmethod
    def wrong_size(cls, index: int | None = None) -> Fault:
        """Result images at half the requested width and height."""
        return cls("wrong_size", index=index)

    @classmethod
    def url_404(cls, index: int | None = None) -> Fault:
        """URL results that answer 404 when fetched."""
        return cls("url_404", index=index)

    @classmethod
    def url_never_ends(cls, index: int | None = None) -> Fault:
        """URL results that send their headers, then stall until the server closes."""
        return cls("url_never_ends", index=index)

    def hits(self, kind: str, index: int) -> bool:
        """Whether this fault changes image ``index`` in the way ``kind`` names."""
        return self.kind == kind and self.index in (None, index)


@dataclass(frozen=True)
class FilePart:
    """One file part of a recorded multipart request."""

    name: str
    filename: str
    content_type: str | None
    data: bytes

    @property
    def image(self) -> Image.Image:
        """The part decoded by Pillow."""
        return Image.open(io.BytesIO(self.data))


@dataclass(frozen=True)
class RecordedRequest:
    """One POST as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    fields: dict[str, str]
    files: list[FilePart]

    def file(self, name: str = "image") -> FilePart | None:
        """The first file part called ``name``."""
        return next((part for part in self.files if part.name == name), None)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def form(self) -> dict[str, Any]:
        """Text fields and file parts by name, the shape ``spec.validate_*_request`` takes."""
        return {**self.fields, **{part.name: part for part in self.files}}


class _APIError(Exception):
    """An OpenAI-style error answer, raised from request checks."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, "invalid_request_error", param, code)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _StoredFile:
    data: bytes
    fault: str | None  # "url_404" | "url_never_ends" | None


def _json_reply(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(obj).encode(), headers=headers)


def _quoted(values: tuple[str, ...] | list[str]) -> str:
    items = [f"'{v}'" for v in values]
    return ", ".join(items[:-1]) + f", and {items[-1]}" if len(items) > 1 else items[0]


def _enum_field(fields: Mapping[str, str], name: str, default: str, allowed: Any) -> str:
    value = fields.get(name, default)
    if value not in allowed:
        message = f"Invalid value: '{value}'. Supported values are: {_quoted(list(allowed))}."
        raise _APIError(400, message, name, "invalid_value")
    return value


def _int_field(fields: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        message = f"Invalid type for '{name}': expected an integer, but got a string instead."
        raise _APIError(400, message, name, "invalid_type") from None
    if value < low:
        message = (
            f"Invalid '{name}': integer below minimum value. "
            f"Expected a value >= {low}, but got {value} instead."
        )
        raise _APIError(400, message, name, "integer_below_min_value")
    if value > high:
        message = (
            f"Invalid '{name}': integer above maximum value. "
            f"Expected a value <= {high}, but got {value} instead."
        )
        raise _APIError(400, message, name, "integer_above_max_value")
    return value


def _parse_size(size: str) -> tuple[int, int]:
    width, height = size.split("x")
    return int(width), int(height)


def _encode(image: Image.Image, fmt: str, compression: int = 100) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        # Speed over size: the server encodes up to ten 1024 px images per request.
        image.save(out, format="PNG", compress_level=1)
    elif fmt == "webp":
        image.save(out, format="WEBP", quality=compression, method=0)
    else:
        image.convert("RGB").save(out, format="JPEG", quality=compression)
    return out.getvalue()


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], list[FilePart]]:
    """Split a multipart/form-data body into text fields and file parts."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise _APIError(
            400, f"Invalid Content-Type header ({content_type}), expected multipart/form-data."
        )
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    headers: dict[bytes, bytes] = {}
    header: list[bytearray] = [bytearray(), bytearray()]
    data = bytearray()

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_end() -> None:
        headers[bytes(header[0]).lower()] = bytes(header[1])
        header[0].clear()
        header[1].clear()

    callbacks: dict[str, Callable[..., None]] = {
        "on_part_begin": on_part_begin,
        "on_header_field": lambda d, s, e: header[0].extend(d[s:e]),
        "on_header_value": lambda d, s, e: header[1].extend(d[s:e]),
        "on_header_end": on_header_end,
        "on_part_data": lambda d, s, e: data.extend(d[s:e]),
        "on_part_end": lambda: parts.append((dict(headers), bytes(data))),
    }
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several unrelated types
        raise _APIError(400, f"Could not parse multipart form: {exc}") from None
    fields: dict[str, str] = {}
    files: list[FilePart] = []
    for part_headers, content in parts:
        _, disposition = parse_options_header(part_headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode()
        filename = disposition.get(b"filename")
        if filename is None:
            fields[name] = content.decode("utf-8", "replace")
        else:
            part_type = part_headers.get(b"content-type")
            files.append(
                FilePart(name, filename.decode(), part_type and part_type.decode(), content)
            )
    return fields, files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``server.requests`` instead."""

    def do_GET(self) -> None:
        self.server.owner._handle(self)

    def do_POST(self) -> None:
        self.server.owner._handle(self)

    def read_body(self) -> bytes:
        if "chunked" not in self.headers.get("transfer-encoding", "").lower():
            return self.rfile.read(int(self.headers.get("content-length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def send_head(self, reply: _Reply, length: int) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        self.send_header("content-length", str(length))
        self.send_header("x-request-id", f"req_{secrets.token_hex(12)}")
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()


class _HTTPServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops the SYNs of a larger fan-out burst, which
    # clients then resend only after a second.
    request_queue_size = 128

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Own thread bookkeeping (instead of ThreadingMixIn's) so close() can shut the
        # sockets down first and only then join the threads.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.owner._track(request, thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        self.owner._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner._handler_failed()


class LoopbackServer:
    """The server; running once constructed. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency: float = 0.0,
        extra_fields: tuple[str, ...] = (),
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.extra_fields = frozenset(extra_fields)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._downloads: list[str] = []
        self._files: dict[str, _StoredFile] = {}
        self._connections: dict[Any, threading.Thread] = {}
        self._httpd = _HTTPServer(self)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LoopbackServer {self.base_url}>"

    # -- public --------------------------------------------------------------------------

    def enqueue(self, *faults: Fault) -> None:
        """Queue faults; each images request takes the next one."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def faults_pending(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed (keep-alive ones included)."""
        with self._lock:
            return len(self._connections)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def downloads(self) -> list[str]:
        with self._lock:
            return list(self._downloads)

    def close(self) -> None:
        """Stop serving, end every stalled answer and join the server's threads."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._thread.join()
        with self._lock:
            connections = dict(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)
        for thread in connections.values():
            thread.join(timeout=5)
        self._httpd.server_close()

    # -- connection bookkeeping (called from _HTTPServer) ----------------------------------

    def _track(self, sock: Any, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[sock] = thread

    def _untrack(self, sock: Any) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    def _handler_failed(self) -> None:
        exc = sys.exc_info()[1]
        # A client that goes away mid-answer is normal here (timeouts, cancelled tests).
        if not isinstance(exc, OSError) and not self._closing.is_set():
            with self._lock:
                self.errors.append(traceback.format_exc())

    # -- request handling --------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        path = handler.path.split("?")[0]
        try:
            if handler.command == "POST":
                self._post(handler, path)
            elif path.startswith("/files/"):
                self._download(handler, path)
            elif path == "/health":
                self._send(handler, _json_reply(200, {"status": "ok"}))
            else:
                self._send(handler, self._invalid_url(handler, path))
        except OSError:
            handler.close_connection = True
        except Exception:
            with self._lock:
                self.errors.append(traceback.format_exc())
            self._send(handler, _json_reply(500, error_body("loopback bug", "server_error")))

    def _invalid_url(self, handler: _Handler, path: str) -> _Reply:
        return _json_reply(404, error_body(f"Invalid URL ({handler.command} {path})"))

    def _post(self, handler: _Handler, path: str) -> None:
        body = handler.read_body()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        content_type = headers.get("content-type", "")
        try:
            fields, files = _parse_multipart(content_type, body)
            parse_error = None
        except _APIError as exc:
            fields, files, parse_error = {}, [], exc
        with self._lock:
            self._requests.append(RecordedRequest("POST", path, headers, fields, files))
        if path not in _ENDPOINTS:
            self._send(handler, self._invalid_url(handler, path))
            return
        with self._lock:
            fault = self._faults.popleft() if self._faults else Fault("none")
        if self._closing.wait(self.latency + (fault.seconds if fault.kind == "delay" else 0)):
            handler.close_connection = True
            return
        if fault.kind == "drop":
            handler.close_connection = True
            return
        if fault.kind == "status":
            extra = dict(fault.headers)
            content_type = extra.pop("content-type")
            reply = _Reply(fault.http_status, fault.body or b"", content_type, tuple(extra.items()))
            self._send(handler, reply)
            return
        try:
            self._authorize(headers.get("authorization"))
            if parse_error is not None:
                raise parse_error
            build = self._variations if path.endswith("variations") else self._edits
            reply = _json_reply(200, build(fields, files, fault))
        except _APIError as exc:
            reply = _json_reply(exc.status, exc.body)
        self._send(handler, self._corrupt(reply, fault), fault)

    def _authorize(self, authorization: str | None) -> None:
        if self.api_key is None:
            return
        if not authorization or not authorization.startswith("Bearer "):
            raise _APIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        given = authorization.removeprefix("Bearer ").strip()
        if given != self.api_key:
            # Like OpenAI: never echo a key, at most its last four characters.
            shown = f"{'sk-' if given.startswith('sk-') else ''}...{given[-4:]}"
            masked = shown if len(given) >= 12 else "***"
            raise _APIError(401, f"Incorrect API key provided: {masked}.", None, "invalid_api_key")

    def _check_fields(
        self, fields: Mapping[str, str], files: list[FilePart], allowed: frozenset[str]
    ) -> None:
        for name in [*fields, *(part.name for part in files)]:
            if name not in allowed | self.extra_fields:
                raise _APIError(400, f"Unknown parameter: '{name}'.", name, "unknown_parameter")

    @staticmethod
    def _image_parts(
        files: list[FilePart], fields: Mapping[str, str], names: tuple[str, ...]
    ) -> list[FilePart]:
        parts = [part for part in files if part.name in names]
        if parts:
            return parts
        if any(name in fields for name in names):
            message = "Invalid type for 'image': expected a file, but got a string instead."
            raise _APIError(400, message, "image", "invalid_type")
        raise _APIError(
            400, "Missing required parameter: 'image'.", "image", "missing_required_parameter"
        )

    def _variations(
        self, fields: dict[str, str], files: list[FilePart], fault: Fault
    ) -> dict[str, Any]:
        self._check_fields(fields, files, _VARIATION_FIELDS)
        contract = spec.schema("CreateImageVariationRequest")["properties"]
        n = _int_field(fields, "n", 1, 1, 10)
        size = _enum_field(fields, "size", "1024x1024", contract["size"]["enum"])
        response_format = _enum_field(
            fields, "response_format", "url", contract["response_format"]["enum"]
        )
        part = self._image_parts(files, fields, ("image",))[0]
        if part.content_type != "image/png":
            message = (
                f"Invalid file 'image': unsupported mimetype ('{part.content_type}'). "
                "Supported file formats are 'image/png'."
            )
            raise _APIError(400, message, "image")
        if not part.data.startswith(PNG_SIGNATURE) or len(part.data) > VARIATION_MAX_BYTES:
            raise _APIError(400, _NOT_A_SMALL_PNG, "image")
        try:
            image = part.image
            image.load()
        except Exception:
            raise _APIError(400, _NOT_A_SMALL_PNG, "image") from None
        if image.width != image.height:
            raise _APIError(400, "Uploaded image must be square.", "image")
        if image.mode not in VARIATION_MODES:
            message = (
                f"Invalid input image - format must be in {list(VARIATION_MODES)}, "
                f"got {image.mode}."
            )
            raise _APIError(400, message, "image")
        encoded = self._results(image, _parse_size(size), n, "png", 100, False, fault)
        if response_format == "b64_json":
            data = [{"b64_json": self._b64(i, raw, fault)} for i, raw in enumerate(encoded)]
        else:
            data = [{"url": self._store(i, raw, fault)} for i, raw in enumerate(encoded)]
        return {"created": int(time.time()), "data": data}

    def _edits(self, fields: dict[str, str], files: list[FilePart], fault: Fault) -> dict[str, Any]:
        self._check_fields(fields, files, _EDITS_FIELDS)
        model = fields.get("model", "gpt-image-1")
        if not model.startswith("gpt-image"):
            message = f"Invalid value for 'model': '{model}'. This endpoint takes gpt-image-*."
            raise _APIError(400, message, "model", "invalid_value")
        prompt = fields.get("prompt", "")
        if not prompt.strip():
            raise _APIError(
                400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
            )
        n = _int_field(fields, "n", 1, 1, 10)
        size = _enum_field(fields, "size", "auto", spec.EDITS_SIZES)
        quality = _enum_field(fields, "quality", "auto", spec.EDITS_QUALITIES)
        background = _enum_field(fields, "background", "auto", spec.EDITS_BACKGROUNDS)
        output_format = _enum_field(fields, "output_format", "png", spec.EDITS_OUTPUT_FORMATS)
        compression = _int_field(fields, "output_compression", 100, 0, 100)
        _enum_field(fields, "input_fidelity", "low", spec.EDITS_INPUT_FIDELITIES)
        if background == "transparent" and output_format == "jpeg":
            message = "Transparent background is not supported for output format 'jpeg'."
            raise _APIError(400, message, "background", "invalid_value")
        if output_format == "png" and compression != 100:
            message = "Compression less than 100 is not supported for PNG output format."
            raise _APIError(400, message, "output_compression", "invalid_value")
        parts = self._image_parts(files, fields, spec.EDITS_IMAGE_PARTS)
        if len(parts) > EDITS_MAX_IMAGES:
            message = f"Too many images: at most {EDITS_MAX_IMAGES}, got {len(parts)}."
            raise _APIError(400, message, "image", "invalid_value")
        images = [self._edits_image(i, part) for i, part in enumerate(parts)]
        first = images[0]
        if size == "auto":
            ratio = first.width / first.height
            size = "1536x1024" if ratio > 1.2 else "1024x1536" if ratio < 1 / 1.2 else "1024x1024"
        quality = "medium" if quality == "auto" else quality
        background = "opaque" if background == "auto" else background
        transparent = background == "transparent"
        encoded = self._results(
            first, _parse_size(size), n, output_format, compression, transparent, fault
        )
        text_tokens = max(1, len(prompt) // 4)
        image_tokens = _EDITS_INPUT_IMAGE_TOKENS * len(images)
        output_tokens = _EDITS_OUTPUT_TOKENS[quality] * n
        return {
            "created": int(time.time()),
            "data": [{"b64_json": self._b64(i, raw, fault)} for i, raw in enumerate(encoded)],
            "background": background,
            "output_format": output_format,
            "quality": quality,
            "size": size,
            "usage": {
                "input_tokens": text_tokens + image_tokens,
                "output_tokens": output_tokens,
                "total_tokens": text_tokens + image_tokens + output_tokens,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
                "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
            },
        }

    @staticmethod
    def _edits_image(index: int, part: FilePart) -> Image.Image:
        if part.content_type not in EDITS_MIME_TYPES:
            message = (
                f"Invalid file '{part.name}': unsupported mimetype ('{part.content_type}'). "
                f"Supported file formats are {_quoted(sorted(EDITS_MIME_TYPES))}."
            )
            raise _APIError(400, message, "image")
        if len(part.data) > EDITS_MAX_BYTES:
            raise _APIError(400, "Image file size must be less than 50 MB.", "image")
        try:
            image = part.image
            image.load()
        except Exception:
            message = (
                f"Invalid image file or mode for image {index + 1}, please check your image file."
            )
            raise _APIError(400, message, "image") from None
        return image

    @staticmethod
    def _results(
        source: Image.Image,
        size: tuple[int, int],
        n: int,
        fmt: str,
        compression: int,
        transparent: bool,
        fault: Fault,
    ) -> list[bytes]:
        """The n encoded result images (see the module docstring), faults applied."""
        results = []
        for index in range(n):
            if fault.hits("not_an_image", index):
                results.append(NOT_AN_IMAGE)
                continue
            target = (size[0] // 2, size[1] // 2) if fault.hits("wrong_size", index) else size
            fitted = ImageOps.fit(source.convert("RGB"), target)
            image = Image.blend(fitted, Image.new("RGB", target, TINTS[index % 10]), TINT_WEIGHT)
            if transparent:
                # A transparent frame, so callers can see the alpha channel is real.
                width, height = target
                alpha = Image.new("L", target, 0)
                alpha.paste(
                    255, (width // 16, height // 16, width - width // 16, height - height // 16)
                )
                image.putalpha(alpha)
            results.append(_encode(image, fmt, compression))
        return results

    @staticmethod
    def _b64(index: int, raw: bytes, fault: Fault) -> str:
        return BAD_BASE64 if fault.hits("bad_base64", index) else base64.b64encode(raw).decode()

    def _store(self, index: int, raw: bytes, fault: Fault) -> str:
        token = secrets.token_urlsafe(12)
        kind = next((k for k in ("url_404", "url_never_ends") if fault.hits(k, index)), None)
        with self._lock:
            self._files[token] = _StoredFile(raw, kind)
        return f"{self.url}/files/{token}.png"

    def _download(self, handler: _Handler, path: str) -> None:
        with self._lock:
            self._downloads.append(path)
            stored = self._files.get(path.removeprefix("/files/").removesuffix(".png"))
        if stored is None or stored.fault == "url_404":
            self._send(handler, _json_reply(404, error_body("File not found or expired.")))
        elif stored.fault == "url_never_ends":
            handler.send_head(_Reply(200, b"", "image/png"), len(stored.data))
            handler.wfile.flush()
            self._closing.wait()
            handler.close_connection = True
        else:
            self._send(handler, _Reply(200, stored.data, "image/png"))

    # -- sending -----------------------------------------------------------------------------

    @staticmethod
    def _corrupt(reply: _Reply, fault: Fault) -> _Reply:
        """Apply the body-level faults that keep HTTP framing intact."""
        if fault.kind == "malformed_json":
            reply.body = b'{"created": 1, "data": [{"b64_json": oops}'
        elif fault.kind == "truncated_json":
            reply.body = reply.body[: len(reply.body) // 2]
        return reply

    def _send(self, handler: _Handler, reply: _Reply, fault: Fault | None = None) -> None:
        kind = fault.kind if fault else "none"
        handler.send_head(reply, len(reply.body))
        if kind == "drop_mid_body":
            handler.wfile.write(reply.body[: len(reply.body) // 2])
            handler.close_connection = True
        elif kind == "slow_body":
            step = max(1, -(-len(reply.body) // fault.pieces))  # ceiling division
            for start in range(0, len(reply.body), step):
                if self._closing.wait(fault.seconds / fault.pieces):
                    handler.close_connection = True
                    return
                handler.wfile.write(reply.body[start : start + step])
        else:
            handler.wfile.write(reply.body)
