"""The robustness corpus as data: bad inputs, wrong types and server faults.

Each case names what it feeds the package and what must come out: a typed error with a
message fragment, or a prepared image of a given mode and size, or (faults) success after
a number of attempts. `run_*` functions run one case against a real loopback server and
return an `Outcome`; the tests assert `outcome.held`, and benchmarks/robustness.py prints
every outcome as a table.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from loopback import Fault, LoopbackServer
from PIL import Image

import ipy_images as ii
from ipy_images._sync import run_sync
from ipy_images.models import ImagesResponse

ENV_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND")


@contextlib.contextmanager
def clean_env() -> Iterator[None]:
    """No key, base URL or backend from the environment while cases run."""
    saved = {name: os.environ.pop(name) for name in ENV_VARS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# -- pictures ----------------------------------------------------------------------------


def photo(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> Image.Image:
    """A picture with structure (a gradient and a bright block), in `mode`."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (250, 240, 20)
    return Image.fromarray(pixels).convert(mode)


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width` x `height` pixels, with one tiny IDAT: a bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def animated_gif() -> bytes:
    frames = [photo((48, 48)), photo((48, 48)).rotate(90), photo((48, 48)).rotate(180)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80)


def exif_rotated_jpeg() -> bytes:
    """A 64x32 JPEG whose EXIF says "rotate 90° clockwise": upright it is 32x64."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    return encoded(photo((64, 32)), "JPEG", exif=exif.tobytes())


def palette_png_with_transparency() -> bytes:
    image = photo((40, 40)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encoded(image, "PNG", transparency=0)


def png_16bit() -> bytes:
    pixels = (np.arange(48 * 48, dtype=np.uint16).reshape(48, 48) * 28).astype(np.uint16)
    image = Image.fromarray(pixels)
    assert image.mode == "I;16"
    return encoded(image, "PNG")


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'
HEIC_LIKE = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


# -- a server for URL sources ------------------------------------------------------------


class AssetServer:
    """Serves the URL sources of the corpus on 127.0.0.1 (not the images API)."""

    HUGE = 60 * 1024 * 1024  # declared, never sent: over the 50 MB download cap
    TRICKLE_EVERY = 0.25  # seconds between the bytes of /trickle.png

    def __init__(self) -> None:
        image = encoded(photo((48, 48)), "PNG")
        routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
            "/photo.png": (200, "image/png", image, {}),
            "/page.html": (200, "text/html", b"<html><body>not a picture</body></html>", {}),
            "/loop": (302, "text/plain", b"", {"Location": "/loop"}),
        }
        self.closing = closing = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                if self.path == "/trickle.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", "10000")
                    self.end_headers()
                    # A byte at a time, never tripping a read timeout, until the server closes.
                    with contextlib.suppress(OSError):
                        while not closing.wait(AssetServer.TRICKLE_EVERY):
                            self.wfile.write(b"\x89")
                            self.wfile.flush()
                    return
                if self.path == "/huge.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(AssetServer.HUGE))
                    self.end_headers()
                    return  # the client must refuse it from the header alone
                status, kind, body, headers = routes.get(
                    self.path, (404, "text/plain", b"not found", {})
                )
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> AssetServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


# -- outcomes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One case's row: what was expected, what happened, and whether that was right."""

    name: str
    expected: str
    got: str
    held: bool
    seconds: float = 0.0


def describe_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:90]}"


DEADLINE = 30.0  # seconds; a call still running by then is reported as hanging
QUICK_DEADLINE = 5.0  # for preparing a 64 px picture, which takes milliseconds


class Hung(Exception):
    """The call did not return within its deadline."""


def within(seconds: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)` on a daemon thread; its result or exception, or Hung.

    A hanging call is a finding to report, not a reason to stall the whole suite (the
    thread is left behind: Python cannot stop it).
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = function(*args, **kwargs)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="robustness-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise Hung(f"{getattr(function, '__name__', function)} still running after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def in_child(seconds: float, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """`function(*args, **kwargs)` in a forked process, killed after `seconds` (then Hung).

    For pure functions that may spin forever: unlike a thread, a process can be stopped,
    so a hang does not slow the rest of the run. Re-raises the child's exception.
    """
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def run() -> None:
        try:
            function(*args, **kwargs)
            sender.send(None)
        except Exception as exc:
            sender.send(exc)

    child = context.Process(target=run, daemon=True)
    child.start()
    try:
        if not receiver.poll(seconds):
            raise Hung(f"{getattr(function, '__name__', function)} still running after {seconds} s")
        error = receiver.recv()
    finally:
        child.kill()
        child.join()
    if error is not None:
        raise error


# -- bad input corpus --------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """A typed error whose message holds `fragment`, or a prepared image `mode` x `size`."""

    error: type[BaseException] | None = None
    fragment: str = ""
    mode: str | None = None
    size: tuple[int, int] | None = None
    original: tuple[int, int] | None = None  # the upright size before squaring

    def __str__(self) -> str:
        if self.error is not None:
            return f"{self.error.__name__} '{self.fragment}'"
        assert self.size is not None
        upright = f" from {self.original[0]}x{self.original[1]}" if self.original else ""
        return f"prepared {self.mode} {self.size[0]}x{self.size[1]}{upright}"


Builder = Callable[[Path, AssetServer], Any]


@dataclass(frozen=True)
class InputCase:
    """`build(workdir, assets)` makes the source; `options` override the request defaults.

    With `prepare`, the source goes to `prepare_image` alone (its own options).
    """

    name: str
    build: Builder
    expect: Expect
    options: Mapping[str, Any] = field(default_factory=dict)
    prepare: Mapping[str, Any] | None = None  # call prepare_image(source, **prepare) instead


def _file(name: str, content: bytes | Callable[[], bytes]) -> Builder:
    def build(workdir: Path, assets: AssetServer) -> str:
        path = workdir / name
        path.write_bytes(content() if callable(content) else content)
        return str(path)

    return build


def _value(make: Callable[[], Any]) -> Builder:
    return lambda workdir, assets: make()


def _url(path: str) -> Builder:
    return lambda workdir, assets: assets.url + path


def _missing(workdir: Path, assets: AssetServer) -> str:
    return str(workdir / "no-such-photo.png")


def _text_mode_file(workdir: Path, assets: AssetServer) -> Any:
    return io.StringIO("\x89PNG as text")


def _png() -> bytes:
    return encoded(photo(), "PNG")


def _jpeg() -> bytes:
    return encoded(photo(), "JPEG")


def _cmyk_jpeg() -> bytes:
    return encoded(photo((40, 40), "CMYK"), "JPEG")


def _err(error: type[BaseException], fragment: str) -> Expect:
    return Expect(error=error, fragment=fragment)


def _prepared(mode: str, side: int, original: tuple[int, int] | None = None) -> Expect:
    return Expect(mode=mode, size=(side, side), original=original)


IMG = ii.InvalidImageError
PARAM = ii.InvalidParameterError
INPUT_CASES: tuple[InputCase, ...] = (
    InputCase("missing file", _missing, _err(IMG, "no such file")),
    InputCase("a directory", lambda w, a: str(w), _err(IMG, "is a folder")),
    InputCase("zero-byte file", _file("empty.png", b""), _err(IMG, "empty (0 bytes)")),
    InputCase("text file", _file("notes.png", b"hello, world\n" * 20), _err(IMG, "text")),
    InputCase("PDF bytes", _value(lambda: PDF), _err(IMG, "PDF")),
    InputCase(
        "truncated PNG", _file("cut.png", lambda: _png()[:300]), _err(IMG, "PNG data is truncated")
    ),
    InputCase(
        "truncated JPEG",
        _file("cut.jpg", lambda: _jpeg()[: len(_jpeg()) // 2]),
        _err(IMG, "JPEG data is truncated"),
    ),
    InputCase(
        "decompression bomb 100000x100000",
        _file("bomb.png", lambda: png_header_claiming(100_000, 100_000)),
        _err(IMG, "decompression bomb"),
    ),
    InputCase(
        "header claiming 9000x9000",
        _file("big.png", lambda: png_header_claiming(9_000, 9_000)),
        _err(IMG, "megapixel limit"),
    ),
    InputCase(
        "non-square, fit=strict",
        _value(lambda: photo((80, 40))),
        _err(IMG, "fit='strict' refuses"),
        {"fit": "strict"},
    ),
    InputCase(
        "numpy int64 dtype",
        _value(lambda: np.zeros((32, 32, 3), dtype=np.int64)),
        _err(IMG, "dtype int64"),
    ),
    InputCase(
        "numpy 5-channel shape",
        _value(lambda: np.zeros((32, 32, 5), dtype=np.uint8)),
        _err(IMG, "shape (32, 32, 5)"),
    ),
    InputCase(
        "numpy float out of [0,1]",
        _value(lambda: np.full((32, 32, 3), 2.0)),
        _err(IMG, "[0, 1]"),
    ),
    InputCase("URL answering 404", _url("/gone.png"), _err(IMG, "HTTP 404")),
    InputCase("URL of an HTML page", _url("/page.html"), _err(IMG, "not an image")),
    InputCase("URL over the size cap", _url("/huge.png"), _err(IMG, "larger than 50 MB")),
    InputCase("URL redirecting forever", _url("/loop"), _err(IMG, "redirects too many times")),
    InputCase(
        "URL trickling a byte at a time",
        _url("/trickle.png"),
        _err(IMG, "did not finish downloading within 3 s"),
        {"timeout": 3},
    ),
    InputCase(
        "file: URL", _value(lambda: "file:///etc/hostname"), _err(IMG, "'file:' URLs are not")
    ),
    InputCase(
        "data: URL",
        _value(lambda: "data:image/png;base64,iVBORw0KGgo="),
        _err(IMG, "'data:' URLs are not"),
    ),
    InputCase("SVG", _file("logo.svg", SVG), _err(IMG, "SVG is a vector format")),
    InputCase("HEIC-like", _file("photo.heic", HEIC_LIKE), _err(IMG, "HEIC")),
    InputCase("text-mode file object", _text_mode_file, _err(IMG, "text mode")),
    InputCase("empty FileUpload value", _value(lambda: ()), _err(IMG, "nothing was uploaded")),
    InputCase("1x1 image", _value(lambda: photo((1, 1))), _err(IMG, "too small")),
    InputCase(
        "1x1 image, fit=pad", _value(lambda: photo((1, 1))), _err(IMG, "too small"), {"fit": "pad"}
    ),
    InputCase("20000x10 strip (crop)", _value(lambda: photo((20000, 10))), _err(IMG, "fit='pad'")),
    InputCase(
        "max_bytes below any PNG",
        _value(photo),
        _err(PARAM, "max_bytes"),
        prepare={"max_bytes": 50},
    ),
    InputCase("n=0", _file("ok.png", _png), _err(PARAM, "n must be between 1"), {"n": 0}),
    InputCase("n=-3", _file("ok.png", _png), _err(PARAM, "n must be between 1"), {"n": -3}),
    InputCase("n=10**9", _file("ok.png", _png), _err(PARAM, "n must be between 1"), {"n": 10**9}),
    InputCase("n=2.5", _file("ok.png", _png), _err(PARAM, "whole number"), {"n": 2.5}),
    InputCase("n=True", _file("ok.png", _png), _err(PARAM, "whole number"), {"n": True}),
    InputCase(
        "size=300x300", _file("ok.png", _png), _err(PARAM, "size='300x300'"), {"size": "300x300"}
    ),
    InputCase(
        "size=1536x1024 (edits only)",
        _file("ok.png", _png),
        _err(PARAM, "size="),
        {"size": "1536x1024"},
    ),
    InputCase(
        "response_format=png",
        _file("ok.png", _png),
        _err(PARAM, "response_format='png'"),
        {"response_format": "png"},
    ),
    InputCase("fit=stretch", _file("ok.png", _png), _err(PARAM, "fit must be"), {"fit": "stretch"}),
    InputCase(
        "prompt on variations",
        _file("ok.png", _png),
        _err(PARAM, "does not take prompt"),
        {"prompt": "a cat"},
    ),
    InputCase(
        "missing API key (OpenAI)",
        _file("ok.png", _png),
        _err(PARAM, "needs an API key"),
        {"base_url": None},
    ),
    InputCase(
        "base_url ftp://",
        _file("ok.png", _png),
        _err(PARAM, "base_url must start with http"),
        {"base_url": "ftp://127.0.0.1/v1"},
    ),
    InputCase(
        "unknown backend",
        _file("ok.png", _png),
        _err(PARAM, "unknown backend"),
        {"backend": "dalle"},
    ),
    # Inputs that are odd but valid: the right prepared image, sent as one request.
    InputCase("animated GIF", _file("anim.gif", animated_gif), _prepared("RGB", 48)),
    InputCase("CMYK JPEG", _file("cmyk.jpg", _cmyk_jpeg), _prepared("RGB", 40)),
    InputCase("16-bit PNG", _file("deep.png", png_16bit), _prepared("RGB", 48)),
    InputCase(
        "palette PNG + transparency",
        _file("palette.png", palette_png_with_transparency),
        _prepared("RGBA", 40),
    ),
    InputCase(
        "EXIF-rotated photo (pad)",
        _file("rotated.jpg", exif_rotated_jpeg),
        _prepared("RGB", 64, original=(32, 64)),
        {"fit": "pad"},
    ),
    InputCase("non-square, fit=crop", _value(lambda: photo((80, 40))), _prepared("RGB", 40)),
    InputCase("greyscale L image", _value(lambda: photo((50, 50), "L")), _prepared("RGB", 50)),
    InputCase(
        "numpy float in [0,1]",
        _value(lambda: np.linspace(0, 1, 32 * 32 * 3).reshape(32, 32, 3)),
        _prepared("RGB", 32),
    ),
    InputCase("bytes without a name", _value(_png), _prepared("RGB", 64)),
    InputCase(
        "FileUpload value",
        _value(lambda: ({"name": "up.png", "type": "", "content": memoryview(_png())},)),
        _prepared("RGB", 64),
    ),
    InputCase("URL of a PNG", _url("/photo.png"), _prepared("RGB", 48)),
    InputCase(
        "20000x10 strip (pad)",
        _value(lambda: photo((20000, 10))),
        _prepared("RGB", 1024),
        {"fit": "pad"},
    ),
)


def request_defaults(server: LoopbackServer) -> dict[str, Any]:
    return {
        "backend": "variations",
        "base_url": server.base_url,
        "n": 1,
        "size": "256x256",
        "max_retries": 0,
        "timeout": 10,
    }


def run_input_case(
    case: InputCase, workdir: Path, assets: AssetServer, server: LoopbackServer
) -> Outcome:
    """Send the case's source through `create_variation` to the loopback server.

    Holds when an invalid input raises the expected error with no request sent, or a valid
    one arrives at the server as one PNG of the expected mode and size.
    """
    source = case.build(workdir, assets)
    before = len(server.requests)
    started = time.perf_counter()
    try:
        if case.prepare is not None:
            in_child(QUICK_DEADLINE, ii.prepare_image, source, **case.prepare)
            raise AssertionError("prepare_image accepted it")
        response = within(
            DEADLINE, ii.create_variation, source, **{**request_defaults(server), **case.options}
        )
    except Exception as exc:
        got, error, response = describe_error(exc), exc, None
    else:
        error = None
    seconds = time.perf_counter() - started
    sent = server.requests[before:]
    expect = case.expect
    if expect.error is not None:
        held = isinstance(error, expect.error) and expect.fragment in str(error) and not sent
        if not sent and error is None:
            got = "no error"
        elif sent:
            got = f"{got if error else 'success'}; {len(sent)} request(s) sent"
        return Outcome(case.name, str(expect), got, held, seconds)
    if response is None:
        return Outcome(case.name, str(expect), got, False, seconds)
    uploaded = sent[0].file("image") if len(sent) == 1 else None
    picture = Image.open(io.BytesIO(uploaded.data)) if uploaded else None
    source = response.source
    got = (
        f"prepared {source.image.mode} {source.image.width}x{source.image.height} from "
        f"{source.original_size[0]}x{source.original_size[1]}; {len(sent)} request(s)"
    )
    held = (
        picture is not None
        and (picture.mode, picture.size) == (expect.mode, expect.size)
        and (source.image.mode, source.image.size) == (expect.mode, expect.size)
        and expect.original in (None, source.original_size)
        and len(response.data) == 1
    )
    return Outcome(case.name, str(expect), got, held, seconds)


# -- wrong types ----------------------------------------------------------------------

WRONG_VALUES: tuple[tuple[str, Any], ...] = (
    ("None", None),
    ("3.5", 3.5),
    ("object()", object()),
    ("[1, 2, 3]", [1, 2, 3]),
    ("{'a': 1}", {"a": 1}),
)
# A wrong type must end in one of these, with a message naming the problem; never an
# AttributeError, KeyError or IndexError from deep inside.
CLEAR_ERRORS = (ii.IpyImagesError, TypeError, ValueError)


@dataclass(frozen=True)
class TypeCase:
    """`call(base_url, value)` passes `value` where `parameter` goes.

    The error message must name the problem: contain one of `words` as a whole word
    (default: the parameter's name), or with `names_type` the value's type name.
    `valid`: labels of WRONG_VALUES that are legitimate there (None for "the default",
    3.5 for a number of seconds), so they are not tried.
    """

    function: str
    parameter: str
    call: Callable[[str, Any], Any]
    words: tuple[str, ...] = ()
    names_type: bool = False
    valid: tuple[str, ...] = ()

    def wanted(self, value: Any) -> tuple[str, ...]:
        words = self.words or (self.parameter,)
        return (*words, type(value).__name__) if self.names_type else words


def _async_client_call(base_url: str, value: Any) -> Any:
    async def go() -> Any:
        async with ii.AsyncVariationClient("variations", base_url=base_url) as client:
            return await client.create_variation(value, n=1, size="256x256")

    return run_sync(go())


def _http(**options: Any) -> dict[str, Any]:
    return {"backend": "variations", "n": 1, "size": "256x256", **options}


def _option(name: str) -> Callable[[str, Any], Any]:
    """create_variation with a good image and `name=value`."""
    return lambda base_url, value: ii.create_variation(
        photo(), **{**_http(base_url=base_url), name: value}
    )


def _client_option(name: str) -> Callable[[str, Any], Any]:
    """VariationClient(..., name=value).create_variation(good image)."""

    def call(base_url: str, value: Any) -> Any:
        options = {"backend": "variations", "base_url": base_url, name: value}
        with ii.VariationClient(**options) as client:
            return client.create_variation(photo(), n=1, size="256x256")

    return call


def _image_param(function: str, call: Callable[[str, Any], Any]) -> TypeCase:
    return TypeCase(function, "image", call, words=("image",), names_type=True)


TYPE_CASES: tuple[TypeCase, ...] = (
    _image_param("create_variation", lambda b, v: ii.create_variation(v, **_http(base_url=b))),
    _image_param(
        "acreate_variation", lambda b, v: run_sync(ii.acreate_variation(v, **_http(base_url=b)))
    ),
    _image_param("AsyncVariationClient.create_variation", _async_client_call),
    _image_param(
        "VariationClient.create_variation",
        lambda b, v: ii.VariationClient("variations", base_url=b).create_variation(
            v, n=1, size="256x256"
        ),
    ),
    # None is "the backend's default" for every request option (typed `X | None = None`).
    TypeCase("create_variation", "n", _option("n"), valid=("None",)),
    TypeCase("create_variation", "size", _option("size"), valid=("None",)),
    TypeCase("create_variation", "response_format", _option("response_format"), valid=("None",)),
    TypeCase("create_variation", "fit", _option("fit"), valid=("None",)),
    TypeCase("create_variation", "model", _option("model"), valid=("None",)),
    TypeCase("create_variation", "user", _option("user"), valid=("None",)),
    TypeCase("create_variation", "on_image", _option("on_image"), valid=("None",)),
    TypeCase("VariationClient", "backend", _client_option("backend"), valid=("None",)),
    TypeCase("VariationClient", "api_key", _client_option("api_key"), valid=("None",)),
    TypeCase("VariationClient", "base_url", _client_option("base_url"), valid=("None",)),
    TypeCase("VariationClient", "timeout", _client_option("timeout"), valid=("3.5",)),
    TypeCase("VariationClient", "max_retries", _client_option("max_retries")),
    TypeCase("VariationClient", "max_concurrency", _client_option("max_concurrency")),
    TypeCase("prepare_image", "source", lambda b, v: ii.prepare_image(v), ("image",), True),
    TypeCase("prepare_image", "fit", lambda b, v: ii.prepare_image(photo(), fit=v)),
    TypeCase(
        "prepare_image",
        "max_side",
        lambda b, v: ii.prepare_image(photo(), max_side=v),
        valid=("3.5",),
    ),
    TypeCase(
        "prepare_image",
        "max_bytes",
        lambda b, v: ii.prepare_image(photo(), max_bytes=v),
        valid=("3.5",),  # a number: the type is right (tiny limits are an input case)
    ),
    TypeCase("load_image", "source", lambda b, v: ii.load_image(v), ("image",), True),
    TypeCase("ImageGrid", "images", lambda b, v: ii.ImageGrid(v), ("images", "image"), True),
    TypeCase(
        "ImageGrid", "titles", lambda b, v: ii.ImageGrid([photo()], titles=v), valid=("None",)
    ),
    TypeCase(
        "ImageGrid", "columns", lambda b, v: ii.ImageGrid([photo()], columns=v), valid=("None",)
    ),
    TypeCase("ImageGrid", "thumb_size", lambda b, v: ii.ImageGrid([photo()], thumb_size=v)),
    TypeCase("ImageGrid.compare", "rows", lambda b, v: ii.ImageGrid.compare(v), names_type=True),
    TypeCase("sample_image", "name", lambda b, v: ii.sample_image(v), words=("sample image",)),
    TypeCase(
        "ImagesResponse.from_dict",
        "raw",
        lambda b, v: ImagesResponse.from_dict(v),
        words=("JSON object",),
        valid=("{'a': 1}",),  # an object without "data": a response with no images
    ),
    TypeCase(
        "ImagesResponse.from_dict",
        "data",
        lambda b, v: ImagesResponse.from_dict({"created": 1, "data": v}),
        words=("'data'",),
        valid=("None",),  # "data": null reads as no images
    ),
)


def type_case_id(case: TypeCase, label: str) -> str:
    return f"{case.function}({case.parameter}={label})"


def _names(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


def run_type_case(case: TypeCase, label: str, value: Any, server: LoopbackServer) -> Outcome:
    """Holds when the call raises a clear error naming the problem and sends nothing."""
    name = type_case_id(case, label)
    wanted = case.wanted(value)
    expected = f"clear error naming {' or '.join(map(repr, wanted))}, no request"
    before = len(server.requests)
    try:
        within(DEADLINE, case.call, server.base_url, value)
    except Hung:
        return Outcome(name, expected, f"still running after {DEADLINE:g} s (hangs)", False)
    except Exception as exc:
        sent = len(server.requests) - before
        clear = isinstance(exc, CLEAR_ERRORS) and any(_names(str(exc), w) for w in wanted)
        got = describe_error(exc) + (f"; {sent} request(s) sent" if sent else "")
        return Outcome(name, expected, got, clear and not sent)
    sent = len(server.requests) - before
    return Outcome(name, expected, f"accepted; {sent} request(s) sent", False)


def type_matrix() -> list[tuple[TypeCase, str, Any]]:
    """Every (case, wrong value) pair to try."""
    return [
        (case, label, value)
        for case in TYPE_CASES
        for label, value in WRONG_VALUES
        if label not in case.valid
    ]


# -- fault matrix ------------------------------------------------------------------------


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class FaultExpect:
    """`error` None: success with `images`; else that error with a partial of `partial`
    images (one of the counts). `attempts`: POSTs the server must have seen."""

    attempts: int
    error: type[BaseException] | None = None
    images: int = 2
    partial: tuple[int, ...] = (0,)

    def __str__(self) -> str:
        tries = _attempts(self.attempts)
        if self.error is None:
            return f"ok, {self.images} images, {tries}"
        kept = "/".join(map(str, self.partial))
        return f"{self.error.__name__}, {tries}, partial {kept}"


@dataclass(frozen=True)
class FaultCase:
    name: str
    backend: str
    faults: tuple[Fault, ...]
    expect: FaultExpect
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.backend}: {self.name}"


_QUICK = {"retry_after_ms": 10}
_DEEP = "[" * 20_000 + "]" * 20_000
_BOMB_B64 = base64.b64encode(png_header_claiming(9400, 9400)).decode()
_CLAIMING_9400 = json.dumps({"created": 1, "data": [{"b64_json": _BOMB_B64}] * 2})
_SHORT = {"timeout": 0.5, "max_retries": 1}
# name, faults, expected, options, backends (url results exist on variations only)
_FAULT_ROWS: tuple[
    tuple[str, tuple[Fault, ...], FaultExpect, dict[str, Any], tuple[str, ...]], ...
] = (
    (
        "429 + Retry-After",
        (Fault.status(429, retry_after="0.1"),),
        FaultExpect(2),
        {},
        ("variations", "edits"),
    ),
    (
        "429 + retry-after-ms",
        (Fault.status(429, retry_after_ms=50),),
        FaultExpect(2),
        {},
        ("variations", "edits"),
    ),
    ("429, no hint (backoff)", (Fault.status(429),), FaultExpect(2), {}, ("variations", "edits")),
    (
        "429 every time",
        (Fault.status(429, **_QUICK),) * 3,
        FaultExpect(3, ii.RateLimitError),
        {},
        ("variations", "edits"),
    ),
    ("500 once", (Fault.status(500, **_QUICK),), FaultExpect(2), {}, ("variations", "edits")),
    (
        "502 once",
        (Fault.status(502, retry_after="0"),),
        FaultExpect(2),
        {},
        ("variations", "edits"),
    ),
    ("503 twice", (Fault.status(503, **_QUICK),) * 2, FaultExpect(3), {}, ("variations", "edits")),
    (
        "500 every time",
        (Fault.status(500, **_QUICK),) * 3,
        FaultExpect(3, ii.InternalServerError),
        {},
        ("variations", "edits"),
    ),
    (
        "500 + x-should-retry: false",
        (Fault.x_should_retry(500, "false"),),
        FaultExpect(1, ii.InternalServerError),
        {},
        ("variations", "edits"),
    ),
    (
        "400 (not retried)",
        (Fault.status(400, message="bad"),),
        FaultExpect(1, ii.BadRequestError),
        {},
        ("variations", "edits"),
    ),
    (
        "401 (not retried)",
        (Fault.status(401),),
        FaultExpect(1, ii.AuthenticationError),
        {},
        ("variations", "edits"),
    ),
    ("connection dropped, no answer", (Fault.drop(),), FaultExpect(2), {}, ("variations", "edits")),
    (
        "connection dropped mid-body",
        (Fault.drop_mid_body(),),
        FaultExpect(2),
        {},
        ("variations", "edits"),
    ),
    (
        "slow body past timeout, once",
        (Fault.slow_body(3.0),),
        FaultExpect(2),
        _SHORT,
        ("variations", "edits"),
    ),
    (
        "slow body past timeout, always",
        (Fault.slow_body(3.0),) * 2,
        FaultExpect(2, ii.APITimeoutError),
        _SHORT,
        ("variations", "edits"),
    ),
    ("malformed JSON once", (Fault.malformed_json(),), FaultExpect(2), {}, ("variations", "edits")),
    ("truncated JSON once", (Fault.truncated_json(),), FaultExpect(2), {}, ("variations", "edits")),
    (
        "malformed JSON always",
        (Fault.malformed_json(),) * 2,
        FaultExpect(2, ii.APIConnectionError),
        {"max_retries": 1},
        ("variations", "edits"),
    ),
    (
        "base64 not base64, once",
        (Fault.bad_base64(index=1),),
        FaultExpect(2),
        {},
        ("variations", "edits"),
    ),
    (
        "base64 not an image, once",
        (Fault.not_an_image(index=0),),
        FaultExpect(2),
        {},
        ("variations", "edits"),
    ),
    (
        "image of the wrong size",
        (Fault.wrong_size(index=1),),
        FaultExpect(1, ii.APIError, partial=(1,)),
        {},
        ("variations", "edits"),
    ),
    (
        "fan-out 12, one batch 400",
        (Fault.status(400),),
        FaultExpect(2, ii.BadRequestError, partial=(2,)),
        {"n": 12, "max_concurrency": 1},
        ("variations", "edits"),
    ),
    (
        "fan-out 12, one batch times out",
        (Fault.slow_body(3.0),) * 2,
        FaultExpect(3, ii.APITimeoutError, partial=(2,)),
        {"n": 12, "max_concurrency": 1, **_SHORT},
        ("variations", "edits"),
    ),
    (
        "JSON nested 20,000 deep, always",
        (Fault.status(200, body='{"data": ' + _DEEP + "}", **_QUICK),) * 3,
        FaultExpect(3, ii.APIConnectionError),
        {},
        ("variations", "edits"),
    ),
    (
        "error body nested 20,000 deep",
        (Fault.status(400, body='{"error": ' + _DEEP + "}"),),
        FaultExpect(1, ii.BadRequestError),
        {},
        ("variations", "edits"),
    ),
    (
        "result claiming 9400x9400",
        (Fault.status(200, body=_CLAIMING_9400),),
        FaultExpect(1, ii.APIError),
        {},
        ("variations",),
    ),
    (
        "result claiming 9400x9400, size auto",
        (Fault.status(200, body=_CLAIMING_9400),),
        FaultExpect(1, ii.APIError),
        {"size": "auto"},
        ("edits",),
    ),
    (
        "URL result 404s",
        (Fault.url_404(index=1),),
        FaultExpect(1, ii.NotFoundError, partial=(1,)),
        {"response_format": "url"},
        ("variations",),
    ),
    (
        "URL result never ends",
        (Fault.url_never_ends(index=1),),
        FaultExpect(1, ii.APITimeoutError, partial=(1,)),
        {"response_format": "url", **_SHORT},
        ("variations",),
    ),
)
FAULT_CASES: tuple[FaultCase, ...] = tuple(
    FaultCase(name, backend, faults, expect, options)
    for name, faults, expect, options, backends in _FAULT_ROWS
    for backend in backends
)
_SIZES = {"variations": "256x256", "edits": "1024x1024"}


def run_fault_case(case: FaultCase, server: LoopbackServer) -> Outcome:
    """Run the case against a fresh `server`: holds when attempts, outcome and partial match."""
    server.enqueue(*case.faults)
    options = {
        "backend": case.backend,
        "base_url": server.base_url,
        "n": 2,
        "size": _SIZES[case.backend],
        "timeout": 10,
        "max_retries": 2,
        **case.options,
    }
    expect = case.expect
    started = time.perf_counter()
    try:
        response = ii.create_variation(photo(), **options)
    except Exception as exc:
        seconds = time.perf_counter() - started
        attempts = len(server.requests)
        partial = exc.partial if isinstance(exc, ii.APIError) else None
        kept = len(partial.data) if partial else 0
        got = f"{type(exc).__name__}, {_attempts(attempts)}, partial {kept}"
        held = (
            expect.error is not None
            and isinstance(exc, expect.error)
            and attempts == expect.attempts
            and kept in expect.partial
            and (partial is None or all(item.content for item in partial.data))
        )
        return Outcome(case.id, str(expect), got, held, seconds)
    seconds = time.perf_counter() - started
    attempts = len(server.requests)
    got = f"ok, {len(response.data)} images, {_attempts(attempts)}"
    held = (
        expect.error is None
        and attempts == expect.attempts
        and len(response.images) == options["n"]
        and not server.faults_pending
    )
    return Outcome(case.id, str(expect), got, held, seconds)
