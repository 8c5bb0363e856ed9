"""An OpenAI-compatible images server over the local engine: one for the whole class.

    $ ipy-images serve --port 8000
    >>> OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-").images.create_variation(...)

`POST /v1/images/variations` speaks the legacy contract strictly (multipart; a square PNG
under 4 MB; `n` 1..10; `size`; `response_format` "url" (default) or "b64_json"; `model`
"dall-e-2", "gpnn" or absent; `user`) and answers an `ImagesResponse`, or the OpenAI error
body `{"error": {"message", "type", "param", "code"}}`. URL results are served by this
server at `GET /v1/files/<token>.png` for 60 minutes. `GET /health` reports the load.

Protections: loopback by default, an optional bearer token (compared in constant time,
never logged or echoed), a request-body cap (413), a bound on generations in flight with
a short queue behind it (429 + `Retry-After` beyond), and graceful shutdown by uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import secrets
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._options import BACKENDS, BackendSpec
from .client import AsyncVariationClient
from .errors import InvalidImageError
from .models import ImageData, ImagesResponse
from .sources import PreparedImage

__all__ = ["create_app", "serve"]

MB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 4 * MB
CONTRACT = BACKENDS["variations"]  # the legacy contract this server speaks...
ENGINE = BACKENDS["local"]  # ...from the local engine
FIELDS = frozenset({"image", "model", "n", "response_format", "size", "user"})
NOT_A_SMALL_PNG = "Uploaded image must be a PNG and less than 4 MB."
URL_STORE_BYTES = 512 * MB  # the oldest results are dropped beyond this, even before expiry


class Refusal(Exception):
    """A request answered with an OpenAI error body instead of images."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, self.status, headers=self.headers)


class _UrlStore:
    """Result PNGs kept in memory under unguessable tokens until they expire."""

    def __init__(self, ttl: float, max_bytes: int = URL_STORE_BYTES) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # oldest first
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, png: bytes) -> str:
        self.evict()
        token = secrets.token_urlsafe(24)
        self._items[token] = (time.monotonic(), png)
        self._bytes += len(png)
        while self._bytes > self.max_bytes and len(self._items) > 1:
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
    typical_seconds: float = 5.0  # a running mean of generation time, for Retry-After
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.max_concurrent)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.in_flight >= self.max_concurrent + self.max_queue:
            wait = max(1, math.ceil(self.typical_seconds))
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
                self.typical_seconds += 0.3 * (time.monotonic() - started - self.typical_seconds)
        finally:
            self.in_flight -= 1


@dataclass
class _Settings:
    api_key: str | None
    max_body: int
    gate: _Gate
    urls: _UrlStore
    client: AsyncVariationClient
    abandoned: int = 0  # generations cancelled because their client hung up


def create_app(
    *,
    api_key: str | None = None,
    max_concurrent: int = 2,
    max_queue: int = 8,
    url_ttl: float = 3600.0,
    max_body: int = 5 * MB,
) -> Starlette:
    """The ASGI app; run it with `serve` or any ASGI server.

    Args:
        api_key: when set, the images endpoint requires `Authorization: Bearer <api_key>`.
        max_concurrent: generations running at once (each uses the engine's shared threads).
        max_queue: further requests that may wait for a slot; beyond them the answer is 429.
        url_ttl: seconds a `response_format=url` result stays downloadable (60 minutes).
        max_body: the largest request body accepted, in bytes (413 beyond).
    """
    if max_concurrent < 1 or max_queue < 0:
        raise ValueError("max_concurrent must be at least 1 and max_queue at least 0")
    settings = _Settings(
        api_key=api_key or None,
        max_body=max_body,
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
        exception_handlers={
            Refusal: _refusal_response,
            HTTPException: _http_error_response,
            ClientDisconnect: _disconnected_response,
            Exception: _server_error_response,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


async def _variations(request: Request) -> Response:
    settings: _Settings = request.app.state.settings
    _authorize(settings.api_key, request.headers.get("authorization"))
    body = await _read_body(request, settings.max_body)
    fields, upload = await _parse_form(request, body)
    try:
        options = _options(fields)
        image = await _image(upload, settings.client)
    finally:
        await upload.close()
    async with settings.gate.admit():
        response = await _unless_disconnected(
            request,
            settings.client.generate(
                image,
                n=options["n"],
                size=options["size"],
                model=options["model"],
                user=options["user"],
            ),
        )
    if response is None:  # nobody is left to answer; the status is only for the access log
        settings.abandoned += 1
        return Response(status_code=499)
    return JSONResponse(_answer(request, response, options["response_format"], settings.urls))


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
    return Response(
        png,
        media_type="image/png",
        headers={"Cache-Control": f"private, max-age={max(0, int(remaining))}"},
    )


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


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limit`."""
    too_large = Refusal(
        413,
        f"The request body is larger than this server's {limit / MB:g} MB limit; "
        "the image must be a PNG under 4 MB.",
        code="request_too_large",
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refusal(400, "Invalid Content-Length header.")
        if int(declared) > limit:
            raise too_large
    # Also counted while reading: chunked bodies declare no length.
    chunks, received = [], 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _parse_form(request: Request, body: bytes) -> tuple[dict[str, str], UploadFile]:
    """The text fields and the `image` file part of a multipart body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Refusal(
            400,
            f"Invalid Content-Type header ({content_type or 'none'}), "
            "expected multipart/form-data.",
        )

    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers, once(), max_files=4, max_fields=16, max_part_size=64 * 1024
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise Refusal(400, f"Could not parse the multipart body: {exc.message}") from None
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


async def _image(upload: UploadFile, client: AsyncVariationClient) -> PreparedImage:
    """The uploaded PNG, decoded; refused unless a square PNG under 4 MB, like the legacy API.

    The content decides, not the part's declared type: clients that send the bytes as
    application/octet-stream are not refused for it.
    """
    data = await upload.read(MAX_IMAGE_BYTES + 1)
    if not data.startswith(PNG_SIGNATURE) or len(data) >= MAX_IMAGE_BYTES:
        raise Refusal(400, NOT_A_SMALL_PNG, param="image")
    if data[12:16] == b"IHDR":  # the header chunk gives the size without decoding
        width, height = struct.unpack(">II", data[16:24])
        if width != height:
            raise Refusal(
                400,
                f"Uploaded image must be square; this one is {width}x{height} pixels.",
                param="image",
            )
    try:
        return await client.prepare(data, fit="strict")  # decoding runs off the event loop
    except InvalidImageError as exc:
        raise Refusal(400, str(exc), param="image") from None


async def _unless_disconnected(request: Request, work: Any) -> ImagesResponse | None:
    """Await `work`; cancel it (freeing the engine) and return None if the client hangs up."""
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
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()


def _answer(
    request: Request, response: ImagesResponse, response_format: str, urls: _UrlStore
) -> dict[str, Any]:
    if response_format == "b64_json":
        data = [{"b64_json": item.b64_json} for item in response.data]
    else:
        data = [
            {"url": str(request.url_for("file", token=urls.put(_png(item))))}
            for item in response.data
        ]
    return {"created": response.created, "data": data}


def _png(item: ImageData) -> bytes:
    if item.content is None:  # the local backend always keeps the bytes it encoded
        raise RuntimeError("the engine returned an image without its PNG bytes")
    return item.content


async def _refusal_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return exc.response()


async def _http_error_response(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in the OpenAI error shape."""
    assert isinstance(exc, HTTPException)
    message = (
        f"Invalid URL ({request.method} {request.url.path})"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return Refusal(exc.status_code, message, headers=exc.headers).response()


async def _disconnected_response(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # the client left mid-upload; nobody reads this


async def _server_error_response(request: Request, exc: Exception) -> Response:
    # uvicorn logs the traceback (never the headers, which may carry the bearer token).
    return Refusal(
        500, "The server had an error while processing your request.", type="server_error"
    ).response()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    *,
    max_concurrent: int = 2,
    max_queue: int = 8,
    log_level: str = "info",
) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests get 30 s to finish.

    Prints the base URL (to use as `OPENAI_BASE_URL`) once the port is bound; with
    `port=0` the system picks a free port and the printed URL names it.
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
    app = create_app(api_key=api_key, max_concurrent=max_concurrent, max_queue=max_queue)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
