"""Loading every kind of source and preparing it for the variations contract.

Inputs are built here with Pillow and numpy; URL sources come from a small real HTTP
server on 127.0.0.1. Each bad input must fail with its own clear `InvalidImageError`.
"""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from loopback import png_bytes
from PIL import Image, ImageFile

from ipy_images import InvalidImageError, InvalidParameterError, load_image, prepare_image
from ipy_images import _download as download_module
from ipy_images.sources import PreparedImage

RED = (200, 80, 40)
BLUE = (20, 60, 220)
FOUR_MB = 4 * 1024 * 1024


def encoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """An incompressible RGB picture, so encoded sizes are realistic for photos."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming `width`x`height` 8-bit RGB, with no pixel data."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + chunk + iend


def assert_prepared(prepared: PreparedImage, *, mode: str = "RGB") -> None:
    """The invariants of every prepared image: the PNG bytes are the picture, hashed."""
    assert prepared.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert prepared.sha256 == hashlib.sha256(prepared.png).hexdigest()
    assert prepared.mime == "image/png"
    assert prepared.image.mode == mode
    assert len(prepared.png) < FOUR_MB
    decoded = Image.open(io.BytesIO(prepared.png))
    assert decoded.size == prepared.image.size
    assert decoded.mode == mode
    assert np.array_equal(np.asarray(decoded), np.asarray(prepared.image))


# -- a small real HTTP server for URL sources ------------------------------------------------


class _Routes(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes
    routes: ClassVar[dict[str, tuple[int, str, bytes, bool]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        status, content_type, body, declare_length = self.routes.get(
            self.path, (404, "text/plain", b"not found", True)
        )
        self.send_response(status)
        self.send_header("content-type", content_type)
        if declare_length:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FileServer:
    """Serves `routes[path] = (status, content type, body, declare Content-Length)`."""

    def __init__(self) -> None:
        handler = type("Handler", (_Routes,), {"routes": {}})
        self.routes: dict[str, tuple[int, str, bytes, bool]] = handler.routes
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(
        self,
        path: str,
        body: bytes,
        content_type: str = "image/png",
        status: int = 200,
        *,
        declare_length: bool = True,
    ) -> str:
        self.routes[path] = (status, content_type, body, declare_length)
        return self.url + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


# -- every source kind -----------------------------------------------------------------------


def test_path_str_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "coffee.png"
    path.write_bytes(png_bytes((64, 64), RED))

    for source in (path, str(path)):
        image, name = load_image(source)
        assert (name, image.size, image.getpixel((0, 0))) == ("coffee.png", (64, 64), RED)


def test_bytes_bytearray_and_memoryview() -> None:
    data = png_bytes((40, 30), BLUE)

    for source in (data, bytearray(data), memoryview(data)):
        image, name = load_image(source)
        assert (name, image.size, image.getpixel((5, 5))) == ("image", (40, 30), BLUE)


def test_binary_file_objects(tmp_path: Path) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(encoded(Image.new("RGB", (32, 32), RED), "JPEG", quality=95))

    with path.open("rb") as handle:
        image, name = load_image(handle)
    assert (name, image.size) == ("cat.jpg", (32, 32))
    assert max(abs(a - b) for a, b in zip(image.getpixel((8, 8)), RED, strict=True)) < 6
    image, name = load_image(io.BytesIO(png_bytes((20, 20))))
    assert (name, image.size) == ("image", (20, 20))


def test_text_mode_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with path.open() as handle, pytest.raises(InvalidImageError, match=r"open\(path, 'rb'\)"):
        load_image(handle)


def test_pil_image_is_copied_and_keeps_its_file_name(tmp_path: Path) -> None:
    path = tmp_path / "astronaut.png"
    path.write_bytes(png_bytes((24, 24), BLUE))
    opened = Image.open(path)

    image, name = load_image(opened)
    assert (name, image.getpixel((0, 0))) == ("astronaut.png", BLUE)
    made = Image.new("RGB", (24, 24), RED)
    image, name = load_image(made)
    assert name == "image.png"
    assert image is not made  # preparing never alters the caller's picture


@pytest.mark.parametrize(
    ("array", "mode", "pixel"),
    [
        (np.full((20, 30), 77, np.uint8), "RGB", (77, 77, 77)),
        (np.full((20, 30, 3), RED, np.uint8), "RGB", RED),
        (np.full((20, 30, 4), (*RED, 128), np.uint8), "RGBA", (*RED, 128)),
        (np.full((20, 30, 3), (1.0, 0.5, 0.0), np.float32), "RGB", (255, 128, 0)),
        (np.full((20, 30), 0.25, np.float64), "RGB", (64, 64, 64)),
    ],
    ids=["HxW-uint8", "HxWx3-uint8", "HxWx4-uint8", "HxWx3-float32", "HxW-float64"],
)
def test_numpy_arrays(array: np.ndarray, mode: str, pixel: tuple[int, ...]) -> None:
    image, name = load_image(array)
    assert (name, image.size) == ("array.png", (30, 20))

    prepared = prepare_image(array, square=False)
    assert_prepared(prepared, mode=mode)
    assert prepared.image.getpixel((3, 3)) == pixel


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((20, 30), np.int64), "dtype int64 are not supported"),
        (np.zeros((20, 30), np.bool_), "dtype bool are not supported"),
        (np.zeros((20, 30, 3), np.complex64), "dtype complex64 are not supported"),
        (np.zeros((20, 30, 2), np.uint8), r"HxW, HxWx3 or HxWx4, not shape \(20, 30, 2\)"),
        (np.zeros((2, 20, 30, 3), np.uint8), r"not shape \(2, 20, 30, 3\)"),
        (np.zeros(30, np.uint8), r"not shape \(30,\)"),
        (np.full((20, 30), 255.0), r"float numpy image must hold finite values in \[0, 1\]"),
        (np.full((20, 30), np.nan, np.float32), r"finite values in \[0, 1\]"),
    ],
    ids=["int64", "bool", "complex", "two-channels", "4d", "1d", "float-0-255", "nan"],
)
def test_unsupported_numpy_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        prepare_image(array)


def ipywidgets_upload_value(content: bytes, name: str = "cat.png") -> tuple[dict[str, Any], ...]:
    """The value of a real ipywidgets 8 FileUpload, set the way the browser sets it."""
    from ipywidgets import FileUpload

    upload = FileUpload(accept="image/*")
    upload.set_state(
        {
            "value": [
                {
                    "name": name,
                    "type": "image/png",
                    "size": len(content),
                    "last_modified": 1_700_000_000_000,
                    "content": memoryview(content),
                }
            ]
        }
    )
    return upload.value


def test_file_upload_value() -> None:
    value = ipywidgets_upload_value(png_bytes((48, 32), RED), "holiday photo.png")
    assert isinstance(value, tuple)
    assert isinstance(value[0]["content"], memoryview)

    image, name = load_image(value)
    assert (name, image.size, image.getpixel((0, 0))) == ("holiday photo.png", (48, 32), RED)
    prepared = prepare_image(value)
    assert (prepared.name, prepared.filename, prepared.image.size) == (
        "holiday photo.png",
        "holiday photo.png",
        (32, 32),
    )
    image, name = load_image(value[0])  # one item of the value works too
    assert name == "holiday photo.png"


def test_empty_and_multiple_uploads_are_refused() -> None:
    with pytest.raises(InvalidImageError, match="nothing was uploaded"):
        load_image(())
    two = ipywidgets_upload_value(png_bytes()) + ipywidgets_upload_value(png_bytes(), "b.png")
    with pytest.raises(InvalidImageError, match=r"2 files were uploaded; give one at a time"):
        load_image(two)


def test_unknown_source_type_is_refused() -> None:
    with pytest.raises(InvalidImageError, match="cannot read an image from a int"):
        load_image(42)


# -- URL sources ---------------------------------------------------------------------------------


def test_url_source(files: FileServer) -> None:
    url = files.add("/pictures/red%20car.png", png_bytes((64, 48), RED))

    image, name = load_image(url)
    assert (name, image.size, image.getpixel((0, 0))) == ("red car.png", (64, 48), RED)


def test_url_with_generic_content_type_is_decoded(files: FileServer) -> None:
    url = files.add("/blob", png_bytes((16, 16), BLUE), "application/octet-stream")

    image, name = load_image(url)
    assert (name, image.getpixel((0, 0))) == ("blob", BLUE)


def test_url_404(files: FileServer) -> None:
    with pytest.raises(InvalidImageError, match=r"answered HTTP 404 Not Found; check the URL"):
        load_image(files.url + "/missing.png")


def test_url_with_html_content(files: FileServer) -> None:
    url = files.add("/gallery", b"<!doctype html><html><body>cats</body></html>", "text/html")

    with pytest.raises(InvalidImageError, match=r"answered with text/html, not an image"):
        load_image(url)


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "streamed"])
def test_url_larger_than_the_cap(
    files: FileServer, monkeypatch: pytest.MonkeyPatch, declare_length: bool
) -> None:
    monkeypatch.setattr(download_module, "MAX_DOWNLOAD_BYTES", 10_000)
    body = encoded(noise((64, 64)))
    assert len(body) > 10_000
    url = files.add("/big.png", body, declare_length=declare_length)

    with pytest.raises(InvalidImageError, match=r"big.png is larger than 0 MB"):
        load_image(url)


def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_url_names_the_problem() -> None:
    with pytest.raises(InvalidImageError, match=r"could not download .*ConnectError"):
        load_image(f"http://127.0.0.1:{free_port()}/x.png")


def test_other_url_schemes_are_refused() -> None:
    with pytest.raises(InvalidImageError, match="'ftp:' URLs are not downloaded"):
        load_image("ftp://example.org/cat.png")


# -- bad files and bytes ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"no such file: .*nope\.png"):
        prepare_image(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="is a folder; give the path of an image file"):
        prepare_image(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty.png is empty \(0 bytes\)"):
        prepare_image(path)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, this is a plain text file\n", "this is text, not an image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "this is a PDF document"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG is a vector format"),
        (b"\x00\x01\x02\xff\xfe" * 20, "not a recognised image format"),
        (truncated(encoded(noise((64, 64)))), "the PNG data is truncated or damaged"),
        (truncated(encoded(noise((64, 64)), "JPEG")), "the JPEG data is truncated or damaged"),
        (png_header(100_000, 100_000), "is a decompression bomb"),
        (png_header(9000, 9000), "claims 9000x9000 pixels, more than the 64 megapixel limit"),
    ],
    ids=["text", "pdf", "svg", "binary", "png-cut", "jpeg-cut", "bomb", "too-many-pixels"],
)
def test_unreadable_content(content: bytes, message: str) -> None:
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(InvalidImageError, match=message):
        prepare_image(content)


def test_too_small_picture() -> None:
    with pytest.raises(InvalidImageError, match=r"8x8 pixels: too small to vary"):
        prepare_image(Image.new("RGB", (8, 8)))
    with pytest.raises(InvalidImageError, match="Use fit='pad'"):
        prepare_image(Image.new("RGB", (200, 10)))


def test_unknown_fit_is_a_parameter_error() -> None:
    with pytest.raises(InvalidParameterError, match="fit must be 'crop', 'pad' or 'strict'"):
        prepare_image(png_bytes(), fit="stretch")


# -- preparing for the variations contract ------------------------------------------------


def test_exif_orientation_is_applied() -> None:
    # Stored wide: red left half, blue right half. Orientation 6 means "rotate 90° clockwise
    # to display", so the photo is upright when tall, with the red half on top.
    stored = Image.new("RGB", (64, 32), BLUE)
    stored.paste(RED, (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())

    image, _ = load_image(photo)
    assert image.size == (32, 64)
    prepared = prepare_image(photo, square=False)
    assert prepared.original_size == (32, 64)
    assert prepared.image.size == (32, 64)
    top, bottom = prepared.image.getpixel((16, 8)), prepared.image.getpixel((16, 56))
    assert max(abs(a - b) for a, b in zip(top, RED, strict=True)) < 12
    assert max(abs(a - b) for a, b in zip(bottom, BLUE, strict=True)) < 12


def palette_png(*, transparent: bool) -> bytes:
    image = Image.new("RGB", (32, 32), RED)
    image.paste(BLUE, (0, 0, 16, 32))
    paletted = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    options = {"transparency": paletted.getpixel((0, 0))} if transparent else {}
    return encoded(paletted, "PNG", **options)


def sixteen_bit_png() -> bytes:
    levels = np.array([[0, 32768, 65535, 65535]], dtype=np.uint16).repeat(4, axis=1)
    image = Image.fromarray(np.repeat(levels, 16, axis=0))
    return encoded(image)


@pytest.mark.parametrize(
    ("source", "mode", "pixels"),
    [
        (palette_png(transparent=False), "RGB", {(20, 5): RED, (5, 5): BLUE}),
        (palette_png(transparent=True), "RGBA", {(20, 5): (*RED, 255), (5, 5): (*BLUE, 0)}),
        (encoded(Image.new("L", (32, 32), 90)), "RGB", {(5, 5): (90, 90, 90)}),
        (encoded(Image.new("LA", (32, 32), (90, 60))), "RGBA", {(5, 5): (90, 90, 90, 60)}),
        (sixteen_bit_png(), "RGB", {(1, 1): (0, 0, 0), (5, 1): (128,) * 3, (9, 1): (255,) * 3}),
        (encoded(Image.new("RGBA", (32, 32), (*RED, 100))), "RGBA", {(5, 5): (*RED, 100)}),
        (encoded(Image.new("RGBA", (32, 32), (*RED, 255))), "RGB", {(5, 5): RED}),
        (Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "RGB", {(5, 5): (255, 0, 0)}),
    ],
    ids=["palette", "palette-alpha", "grey", "grey-alpha", "16-bit", "rgba", "rgba-opaque", "cmyk"],
)
def test_modes_become_rgb_or_rgba(source: Any, mode: str, pixels: dict[Any, Any]) -> None:
    prepared = prepare_image(source, square=False)

    assert_prepared(prepared, mode=mode)
    for xy, value in pixels.items():
        assert prepared.image.getpixel(xy) == value


def test_cmyk_jpeg_becomes_rgb() -> None:
    jpeg = encoded(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(jpeg)).mode == "CMYK"

    prepared = prepare_image(jpeg)
    assert_prepared(prepared)
    red, green, blue = prepared.image.getpixel((16, 16))
    assert red > 240 and green < 15 and blue < 15


def test_sixteen_bit_png_is_read_as_sixteen_bit() -> None:
    assert Image.open(io.BytesIO(sixteen_bit_png())).mode.startswith("I")


def framed(size: tuple[int, int], centre: tuple[int, int, int]) -> Image.Image:
    """A picture with a RED border zone and `centre` in its middle square."""
    image = Image.new("RGB", size, RED)
    side = min(size)
    left, top = (size[0] - side) // 2, (size[1] - side) // 2
    image.paste(centre, (left, top, left + side, top + side))
    return image


@pytest.mark.parametrize("size", [(96, 64), (64, 96)], ids=["wide", "tall"])
def test_crop_keeps_the_centre(size: tuple[int, int]) -> None:
    prepared = prepare_image(framed(size, BLUE))

    assert prepared.image.size == (64, 64)
    assert prepared.original_size == size
    colours = {colour for _, colour in prepared.image.getcolors()}
    assert colours == {BLUE}


def test_pad_keeps_everything_and_pads_with_the_border_colour() -> None:
    prepared = prepare_image(framed((96, 64), BLUE), fit="pad")

    assert prepared.image.size == (96, 96)
    assert prepared.image.getpixel((48, 48)) == BLUE
    assert prepared.image.getpixel((48, 2)) == prepared.image.getpixel((48, 93))
    assert prepared.image.getpixel((2, 48)) == RED


def test_pad_keeps_transparency_transparent() -> None:
    prepared = prepare_image(Image.new("RGBA", (64, 32), (*RED, 200)), fit="pad")

    assert prepared.image.size == (64, 64)
    assert prepared.image.getpixel((32, 2)) == (0, 0, 0, 0)
    assert prepared.image.getpixel((32, 32)) == (*RED, 200)


def test_strict_refuses_non_square_and_accepts_square() -> None:
    with pytest.raises(InvalidImageError, match=r"96x64, not square, and fit='strict' refuses it"):
        prepare_image(framed((96, 64), BLUE), fit="strict")
    assert prepare_image(png_bytes((64, 64)), fit="strict").image.size == (64, 64)


def test_non_square_allowed_when_the_backend_takes_any_aspect() -> None:
    prepared = prepare_image(framed((96, 64), BLUE), fit="strict", square=False)
    assert prepared.image.size == (96, 64)


def test_huge_noisy_picture_is_downscaled_under_4_mb() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (6000, 6000, 3), dtype=np.uint8)

    prepared = prepare_image(pixels)
    assert_prepared(prepared)
    assert prepared.original_size == (6000, 6000)
    assert prepared.image.size == (1024, 1024)


def test_png_is_shrunk_until_under_the_byte_limit() -> None:
    # 2048 px of noise encodes to ~12 MB: only the byte limit, not the side, shrinks it.
    prepared = prepare_image(noise((2048, 2048)), max_side=2048)

    assert_prepared(prepared)
    assert 800 < prepared.image.width < 2048
    assert prepared.image.width == prepared.image.height
    small = prepare_image(noise((256, 256)), max_bytes=100_000)
    assert len(small.png) < 100_000


def test_name_and_hash_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "my cat.jpg"
    path.write_bytes(encoded(noise((80, 60)), "JPEG"))

    prepared = prepare_image(path)
    assert (prepared.name, prepared.filename) == ("my cat.jpg", "my cat.png")
    assert prepared.sha256 == hashlib.sha256(prepared.png).hexdigest()
    assert prepare_image(path).sha256 == prepared.sha256  # deterministic
    assert "my cat.jpg" in repr(prepared) and "60x60" in repr(prepared)
    assert prepare_image(png_bytes()).filename == "image.png"
