"""An OpenAI-compatible images server over the local engine: one for the whole class.

    $ ipy-images serve --port 8000
    >>> OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-").images.create_variation(...)

`POST /v1/images/variations` speaks the legacy contract strictly (multipart; a square PNG
under 4 MB; `n` 1..10; `size`; `response_format` "url" (default) or "b64_json"; `model`
"dall-e-2", "gpnn" or absent; `user`) and answers an `ImagesResponse`, or the OpenAI error
body `{"error": {"message", "type", "param", "code"}}`. URL results are served by this
server at `GET /v1/files/<token>.png` for 60 minutes. `GET /health` reports the load.

Protections: loopback by default, an optional bearer token (compared in constant time,
never logged or echoed; query strings are kept out of the access log), a request-body cap
(answered like any too-large image), bodies streamed to temporary files within a shared
budget, a deadline for request headers and for each pause in a body, a connection cap
that sheds the oldest idle connections, a bound on decodes and generations in flight with
a short queue behind it (429 + `Retry-After` for the queue to drain), early answers sent
only after the rest of the body is discarded (so no reset destroys them), and graceful
shutdown by uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import re
import resource
import secrets
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._options import BACKENDS, BackendSpec
from ._redact import redact
from .client import AsyncVariationClient
from .errors import InvalidImageError
from .models import ImagesResponse

__all__ = ["create_app", "serve"]

MB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 4 * MB
CONTRACT = BACKENDS["variations"]  # the legacy contract this server speaks...
ENGINE = BACKENDS["local"]  # ...from the local engine
FIELDS = frozenset({"image", "model", "n", "response_format", "size", "user"})
# Also the answer to a body too large, whatever its size, so that SDKs raise the same error.
NOT_A_SMALL_PNG = "Uploaded image must be a PNG and less than 4 MB."
URL_STORE_BYTES = 512 * MB  # the oldest results are dropped beyond this, even before expiry
UPLOADS_BYTES = 64 * MB  # all request bodies being received at once; beyond, 429
SPOOL_BYTES = 64 * 1024  # an upload beyond this waits in a temporary file, not in memory
UPLOAD_SECONDS = 120.0  # the longest a whole body may take to arrive, pauses or not
FIRST_GUESS_SECONDS = 5.0  # a generation's time, for Retry-After, until one is measured
MAX_RETRY_AFTER = 60  # the official SDK ignores longer waits and falls back to its own
FD_RESERVE = 64  # descriptors kept for the engine, logs and result files
LINGER_SECONDS = 2.0  # an early answer first discards what is still arriving, this long at most
LINGER_PAUSE = 0.5  # ...and stops at the first pause this long
ASCII_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(eq=False)
class Refusal(Exception):
    """A request answered with an OpenAI error body instead of images."""

    status: int
    message: str
    _: KW_ONLY
    param: str | None = None
    code: str | None = None
    type: str = "invalid_request_error"
    headers: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, self.status, headers=self.headers)


class _UrlStore:
    """Result PNGs kept in memory under unguessable tokens until they expire."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # oldest first
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, png: bytes) -> str:
        self.evict()
        token = secrets.token_urlsafe(24)
        self._items[token] = (time.monotonic(), png)
        self._bytes += len(png)
        while self._bytes > URL_STORE_BYTES and len(self._items) > 1:
            self._drop_oldest()
        return token

    def get(self, token: str) -> tuple[bytes, float] | None:
        """The PNG and its remaining lifetime in seconds, or None when expired or unknown."""
        self.evict()
        item = self._items.get(token)
        if item is None:
            return None
        created, png = item
        return png, self.ttl - (time.monotonic() - created)

    def evict(self) -> None:
        cutoff = time.monotonic() - self.ttl
        while self._items and next(iter(self._items.values()))[0] <= cutoff:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, (_, png) = self._items.popitem(last=False)
        self._bytes -= len(png)


@dataclass
class _Gate:
    """At most `max_concurrent` generations run; `max_queue` more may wait; others get 429."""

    max_concurrent: int
    max_queue: int
    in_flight: int = 0
    typical_seconds: float | None = None  # a running mean of generation time, once measured
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.max_concurrent)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.in_flight >= self.max_concurrent + self.max_queue:
            wait = self.retry_after()
            raise Refusal(
                429,
                f"The server is busy: {self.in_flight} requests are being served or queued. "
                f"Retry after {wait} s.",
                type="rate_limit_exceeded",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(wait)},
            )
        self.in_flight += 1
        try:
            async with self.slots:
                started = time.monotonic()
                yield
                took = time.monotonic() - started
                typical = took if self.typical_seconds is None else self.typical_seconds
                self.typical_seconds = typical + 0.3 * (took - typical)
        finally:
            self.in_flight -= 1

    def retry_after(self) -> int:
        """Seconds until the requests ahead have drained, the workers sharing the queue.

        One generation's time is too short: everyone refused would come back to a queue
        that is still full, and run out of retries.
        """
        each = FIRST_GUESS_SECONDS if self.typical_seconds is None else self.typical_seconds
        ahead = self.in_flight * each / self.max_concurrent
        return min(MAX_RETRY_AFTER, max(1, math.ceil(ahead)))


@dataclass
class _Settings:
    api_key: str | None
    max_body: int
    read_timeout: float
    max_uploading: int
    gate: _Gate
    urls: _UrlStore
    client: AsyncVariationClient
    abandoned: int = 0  # generations cancelled because their client hung up
    uploading: int = 0  # bytes of the request bodies being received now

    def abandon(self) -> None:
        """Count a generation whose client hung up (see _unless_disconnected)."""
        self.abandoned += 1


def create_app(
    *,
    api_key: str | None = None,
    max_concurrent: int = 2,
    max_queue: int = 8,
    url_ttl: float = 3600.0,
    max_body: int = 5 * MB,
    read_timeout: float = 10.0,
    max_uploading: int = UPLOADS_BYTES,
) -> Starlette:
    """The ASGI app; run it with `serve` or any ASGI server.

    Args:
        api_key: when set, the images endpoint requires `Authorization: Bearer <api_key>`.
        max_concurrent: generations running at once (each uses the engine's shared threads).
        max_queue: further requests that may wait for a slot; beyond them the answer is 429.
        url_ttl: seconds a `response_format=url` result stays downloadable (60 minutes).
        max_body: the largest request body accepted, in bytes (beyond, the image is too large).
        read_timeout: the longest pause allowed while a request body arrives (408 beyond).
        max_uploading: bytes of request bodies received at once, all together (429 beyond).
    """
    if max_concurrent < 1 or max_queue < 0:
        raise ValueError("max_concurrent must be at least 1 and max_queue at least 0")
    settings = _Settings(
        api_key=api_key or None,
        max_body=max_body,
        read_timeout=read_timeout,
        max_uploading=max_uploading,
        gate=_Gate(max_concurrent, max_queue),
        urls=_UrlStore(url_ttl),
        client=AsyncVariationClient(backend="local"),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await settings.client.aclose()

    app = Starlette(
        routes=[
            Route("/v1/images/variations", _variations, methods=["POST"]),
            Route("/v1/files/{token}.png", _file, methods=["GET"], name="file"),
            Route("/health", _health, methods=["GET"]),
        ],
        middleware=[Middleware(_DiscardUnreadBody)],
        exception_handlers=dict.fromkeys(
            (Refusal, HTTPException, ClientDisconnect, Exception), _error_response
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


async def _variations(request: Request) -> Response:
    settings: _Settings = request.app.state.settings
    _authorize(settings.api_key, request.headers.get("authorization"))
    fields, upload = await _read_form(request, settings)
    try:
        options = _options(fields)
        response_format = options.pop("response_format")
        await _check_png_header(upload)
        response = await _unless_disconnected(
            request, _generate(settings, upload, options), on_hang_up=settings.abandon
        )
    finally:
        await upload.close()
    if response is None:  # nobody is left to answer; the status is only for the access log
        return Response(status_code=499)
    return JSONResponse(_answer(request, response, response_format, settings.urls))


async def _generate(
    settings: _Settings, upload: UploadFile, options: Mapping[str, Any]
) -> ImagesResponse:
    # Decoding takes memory in proportion to the picture, so it waits for a slot too.
    async with settings.gate.admit():
        await upload.seek(0)  # back before the header that `_check_png_header` read
        try:  # decoding runs off the event loop
            image = await settings.client.prepare(await upload.read(), fit="strict")
        except InvalidImageError as exc:
            raise Refusal(400, str(exc), param="image") from None
        return await settings.client.generate(image, **options)


async def _file(request: Request) -> Response:
    found = request.app.state.settings.urls.get(request.path_params["token"])
    if found is None:
        raise Refusal(
            404,
            "This image URL has expired (result URLs last 60 minutes) or never existed; "
            "ask for the variation again.",
            code="url_expired",
        )
    png, remaining = found
    cache = {"Cache-Control": f"private, max-age={max(0, int(remaining))}"}
    return Response(png, media_type="image/png", headers=cache)


async def _health(request: Request) -> Response:
    settings: _Settings = request.app.state.settings
    return JSONResponse(
        {
            "status": "ok",
            "in_flight": settings.gate.in_flight,
            "max_concurrent": settings.gate.max_concurrent,
            "max_queue": settings.gate.max_queue,
            "stored_images": len(settings.urls),
            "abandoned": settings.abandoned,
        }
    )


def _authorize(api_key: str | None, authorization: str | None) -> None:
    if api_key is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        raise Refusal(
            401,
            "You didn't provide an API key. Send it in an Authorization header using Bearer "
            "auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        # Like OpenAI: never echo a key, at most the last four characters of a long one.
        shown = f"{'sk-' if given.startswith('sk-') else ''}...{given[-4:]}"
        raise Refusal(
            401,
            f"Incorrect API key provided: {shown if len(given) >= 12 else '***'}.",
            code="invalid_api_key",
        )


async def _read_form(request: Request, settings: _Settings) -> tuple[dict[str, str], UploadFile]:
    """The text fields and the `image` file part of a multipart body, read as it arrives."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Refusal(
            400,
            f"Invalid Content-Type header ({content_type or 'none'}), "
            "expected multipart/form-data.",
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise Refusal(400, "Invalid Content-Length header.")
        if int(declared) > settings.max_body:
            raise Refusal(400, NOT_A_SMALL_PNG, param="image")
    # A declared length is held from the start, so a flood of uploads is refused unstored.
    held = int(declared or 0)
    if settings.uploading + held > settings.max_uploading:
        raise _busy_uploading(settings.read_timeout)
    settings.uploading += held
    received = 0

    async def body() -> AsyncGenerator[bytes, None]:
        nonlocal received, held
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UPLOAD_SECONDS
        more = True
        while more:
            try:  # asyncio.timeout_at is Python 3.11+; this package supports 3.10
                wait = min(deadline - loop.time(), settings.read_timeout)
                message = await asyncio.wait_for(request.receive(), max(wait, 0))
            except asyncio.TimeoutError:
                raise Refusal(
                    408,
                    "The request body arrived too slowly (a pause over "
                    f"{settings.read_timeout:g} s, or over {UPLOAD_SECONDS:g} s in all); "
                    "send the upload again without pausing.",
                    code="request_timeout",
                    headers={"Connection": "close"},  # nobody is sending the rest
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk, more = message.get("body", b""), message.get("more_body", False)
            received += len(chunk)
            # Also counted while reading: chunked bodies declare no length.
            if received > settings.max_body:
                raise Refusal(400, NOT_A_SMALL_PNG, param="image")
            if received > held:
                if settings.uploading + received - held > settings.max_uploading:
                    raise _busy_uploading(settings.read_timeout)
                settings.uploading += received - held
                held = received
            yield chunk

    parser = MultiPartParser(
        request.headers, body(), max_files=4, max_fields=16, max_part_size=64 * 1024
    )
    parser.spool_max_size = SPOOL_BYTES  # so stalled uploads hold little memory
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise Refusal(400, f"Could not parse the multipart body: {exc.message}") from None
    finally:
        settings.uploading -= held
    fields: dict[str, str] = {}
    upload: UploadFile | None = None
    try:
        for name, value in form.multi_items():
            if name not in FIELDS:
                raise Refusal(
                    400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
                )
            if isinstance(value, UploadFile) and name == "image" and upload is None:
                upload = value
            elif isinstance(value, str) and name != "image":
                fields[name] = value
            elif name == "image" and isinstance(value, str):
                raise Refusal(
                    400,
                    "Invalid type for 'image': expected a file, but got a string instead.",
                    param="image",
                    code="invalid_type",
                )
            else:
                raise Refusal(400, f"'{name}' was given more than once or as a file.", param=name)
        if upload is None:
            raise Refusal(
                400,
                "Missing required parameter: 'image'.",
                param="image",
                code="missing_required_parameter",
            )
    except Refusal:
        await form.close()
        raise
    return fields, upload


def _busy_uploading(read_timeout: float) -> Refusal:
    wait = math.ceil(read_timeout)
    return Refusal(
        429,
        f"The server is receiving too many uploads at once. Retry after {wait} s.",
        type="rate_limit_exceeded",
        code="rate_limit_exceeded",
        headers={"Connection": "close", "Retry-After": str(wait)},  # the body is not read
    )


def _options(fields: Mapping[str, str]) -> dict[str, Any]:
    """The validated request options, with the legacy contract's defaults."""
    return {
        "n": _whole_number(fields, "n", default=CONTRACT.default("n"), low=1, high=10),
        "size": _choice(fields, "size", CONTRACT),
        "response_format": _choice(fields, "response_format", CONTRACT),
        "model": _choice(fields, "model", ENGINE),
        "user": fields.get("user"),
    }


def _choice(fields: Mapping[str, str], name: str, spec: BackendSpec) -> str | None:
    """The field's value, or the contract's default; refused unless `spec` takes it."""
    allowed = spec.choices(name) or ()
    value = fields.get(name, CONTRACT.default(name, official=True))
    if value is not None and value not in allowed:
        listed = ", ".join(f"'{a}'" for a in allowed)
        raise Refusal(
            400,
            f"Invalid value for '{name}': '{value}'. Supported values are: {listed}.",
            param=name,
            code="invalid_value",
        )
    return value


def _whole_number(
    fields: Mapping[str, str], name: str, *, default: int, low: int, high: int
) -> int:
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        if not ASCII_INTEGER.fullmatch(raw):  # int() also takes ' 2 ', '1_0' and other digits
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise Refusal(
            400,
            f"Invalid type for '{name}': expected an integer, but got '{raw[:20]}' instead.",
            param=name,
            code="invalid_type",
        ) from None
    if not low <= value <= high:
        raise Refusal(
            400,
            f"Invalid '{name}': {value} is out of range; it must be between {low} and {high}.",
            param=name,
            code="integer_above_max_value" if value > high else "integer_below_min_value",
        )
    return value


async def _check_png_header(upload: UploadFile) -> None:
    """Refuse, before queueing, what is not a square PNG under 4 MB, like the legacy API.

    The content decides, not the part's declared type: clients that send the bytes as
    application/octet-stream are not refused for it.
    """
    head = await upload.read(24)
    if not head.startswith(PNG_SIGNATURE) or (upload.size or 0) >= MAX_IMAGE_BYTES:
        raise Refusal(400, NOT_A_SMALL_PNG, param="image")
    if head[12:16] == b"IHDR":  # the header chunk gives the size without decoding
        width, height = struct.unpack(">II", head[16:24])
        if width != height:
            raise Refusal(
                400,
                f"Uploaded image must be square; this one is {width}x{height} pixels.",
                param="image",
            )


class _DiscardUnreadBody:
    """Discards the unread rest of a request body before an early answer goes out.

    A socket closed with unread data in it is reset, and the reset can destroy the answer
    still in flight: a client whose large upload is refused early (a wrong key, too large,
    too many uploads at once) would see a broken connection instead of the error. The rest
    is dropped as it arrives, so memory stays bounded; `LINGER_SECONDS` bounds the time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # A client waiting for "100 Continue" has sent nothing yet, and should send nothing.
        complete = (b"expect", b"100-continue") in scope["headers"]

        async def tracked_receive() -> Message:
            nonlocal complete
            message = await receive()
            complete = complete or not message.get("more_body", False)
            return message

        async def send_after_the_body(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.start" and not complete:
                await _discard_rest(receive)
                complete = True
            await send(message)

        await self.app(scope, tracked_receive, send_after_the_body)


async def _discard_rest(receive: Receive) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            wait = min(deadline - loop.time(), LINGER_PAUSE)
            message = await asyncio.wait_for(receive(), max(wait, 0))
            if not message.get("more_body", False):  # the end of the body, or a disconnect
                return


async def _unless_disconnected(
    request: Request, work: Any, *, on_hang_up: Callable[[], None]
) -> ImagesResponse | None:
    """Await `work`; if the client hangs up first, call `on_hang_up`, cancel `work` (freeing
    the engine) and return None."""
    task = asyncio.ensure_future(work)

    async def hung_up() -> None:
        # The body is read already, so the next message is the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        hung_up_first = not task.done()
        if hung_up_first:
            # Counted before the cancel frees the generation's slot, so /health never shows
            # it neither in flight nor abandoned (counted after, a test once read it there).
            on_hang_up()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if hung_up_first else task.result()


def _answer(
    request: Request, response: ImagesResponse, response_format: str, urls: _UrlStore
) -> dict[str, Any]:
    data: list[dict[str, str | None]] = []
    for item in response.data:
        if response_format == "b64_json":
            data.append({"b64_json": item.b64_json})
        elif item.content is None:  # the local backend always keeps the bytes it encoded
            raise RuntimeError("the engine returned an image without its PNG bytes")
        else:
            data.append({"url": str(request.url_for("file", token=urls.put(item.content)))})
    return {"created": response.created, "data": data}


async def _error_response(request: Request, exc: Exception) -> Response:
    """Every error in the OpenAI error shape, routing errors (404, 405) included."""
    if isinstance(exc, ClientDisconnect):
        return Response(status_code=499)  # the client left mid-upload; nobody reads this
    if isinstance(exc, HTTPException):
        message = f"Invalid URL ({request.method} {request.url.path})"
        exc = Refusal(exc.status_code, message, headers=exc.headers)
    elif not isinstance(exc, Refusal):
        # uvicorn logs the traceback (never the headers, which may carry the bearer token).
        message = "The server had an error while processing your request."
        exc = Refusal(500, message, type="server_error")
    return exc.response()


class _AccessLogFilter(logging.Filter):
    """Logs each request's path without its query string, where keys get pasted.

    The server's own key is masked in what is left, in any recognisable piece.
    """

    def __init__(self, api_key: str | None) -> None:
        super().__init__()
        self.api_key = api_key

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access line: (client, method, path with query, HTTP version, status)
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, target, version, status = record.args
            path, question_mark, _ = str(target).partition("?")
            shown = redact(path, self.api_key) + ("?..." if question_mark else "")
            record.args = (client, method, shown, version, status)
        return True


def _connection_limits(max_connections: int) -> tuple[int, int]:
    """The connection cap and listen backlog that the descriptor limit (`ulimit -n`) holds.

    asyncio accepts up to a backlog's worth of connections before any of them can be
    shed, and each connection may hold an upload's temporary file too.
    """
    backlog = 2048
    descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if descriptors != resource.RLIM_INFINITY:
        spare = max(8, descriptors - FD_RESERVE)
        backlog = min(backlog, spare // 4)
        max_connections = min(max_connections, max(1, (spare - backlog) // 2))
    return max_connections, backlog


def _guarded_protocol(read_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for request headers and a connection cap.

    uvicorn waits forever for the headers of a request, so slow connections pile up until
    the descriptors run out and nobody is served. Here headers must arrive within
    `read_timeout` (as must the rest of a body refused before it was read), and past
    `max_connections` the connection waiting longest for headers is closed for the new
    one. uvicorn's own `limit_concurrency` would answer 503 to every request instead,
    /health included.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        # connections waiting for a request's headers, the longest waiting first
        idle: ClassVar[OrderedDict[GuardedH11Protocol, asyncio.TimerHandle]] = OrderedDict()
        shed: ClassVar[set[GuardedH11Protocol]] = set()  # closed here, not yet gone

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._await_headers()
            while len(self.connections) - len(self.shed) > max_connections:
                oldest = next(iter(self.idle), self)  # self when every other one is busy
                oldest._shed()
                if oldest is self:
                    break

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            self.shed.discard(self)
            super().connection_lost(exc)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's headers arrived
                self._headers_arrived()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            if self.cycle is cycle:  # no pipelined request started
                # The next request on a kept-alive connection, or the rest of a refused
                # body, which uvicorn reads and drops so the client sees the answer.
                self._await_headers()

        def _await_headers(self) -> None:
            if not self.transport.is_closing():
                self._headers_arrived()
                self.idle[self] = self.loop.call_later(read_timeout, self._shed)

        def _headers_arrived(self) -> None:
            timer = self.idle.pop(self, None)
            if timer is not None:
                timer.cancel()

        def _shed(self) -> None:
            self._headers_arrived()
            if not self.transport.is_closing():
                self.shed.add(self)
                self.transport.close()

    return GuardedH11Protocol


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    *,
    max_concurrent: int = 2,
    max_queue: int = 8,
    log_level: str = "info",
    read_timeout: float = 10.0,
    max_connections: int = 4096,
) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests get 30 s to finish.

    Prints the base URL (to use as `OPENAI_BASE_URL`) once the port is bound; with
    `port=0` the system picks a free port and the printed URL names it.

    `read_timeout` bounds each wait for a request's headers or for the next part of its
    body; `max_connections` the open connections (fewer where the descriptor limit,
    `ulimit -n`, would not hold them with an upload's temporary file each).
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Bound (and listening) here, so the printed URL is right even for port 0, and
    # clients that connect at once simply wait in the backlog until uvicorn accepts.
    sock = socket.create_server((host, port), family=family)
    bound = sock.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    base_url = f"http://{shown}:{bound}/v1"
    print(f"ipy-images: serving image variations at {base_url}", flush=True)
    print(f"  point any OpenAI client at it: export OPENAI_BASE_URL={base_url}", flush=True)
    if api_key:
        print("  clients must send the token you chose: export OPENAI_API_KEY=<token>", flush=True)
    elif host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"  warning: {host} is reachable from the network and no --api-key is set", flush=True
        )
    app = create_app(
        api_key=api_key,
        max_concurrent=max_concurrent,
        max_queue=max_queue,
        read_timeout=read_timeout,
    )
    max_connections, backlog = _connection_limits(max_connections)
    config = uvicorn.Config(
        app,
        http=_guarded_protocol(read_timeout, max_connections),
        log_level=log_level,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,  # the request line and headers
        backlog=backlog,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    # Added once uvicorn.Config has set up uvicorn's loggers, and taken off after, so a
    # second server in the same process does not stack filters.
    access_log, no_secrets = logging.getLogger("uvicorn.access"), _AccessLogFilter(api_key)
    access_log.addFilter(no_secrets)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        access_log.removeFilter(no_secrets)
