"""Nothing half-written, nothing outside the chosen folder, no markup that runs, and the
project's own server stays up under garbage."""

from __future__ import annotations

import base64
import contextlib
import io
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from loopback import Fault, LoopbackServer
from PIL import Image

import ipy_images as ii
from ipy_images._files import write_run
from ipy_images.models import ImageData, ImagesResponse

from .cases import encoded, photo, png_header_claiming

HOSTILE = ("<img src=x onerror=alert(1)>", '"><script>alert(1)</script>')


class Elements(HTMLParser):
    """Every element and attribute of an HTML fragment, as a browser would see them."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)


def assert_inert(markup: str) -> None:
    found = Elements(markup)
    assert "script" not in found.tags
    assert not [name for name in found.attributes if name.startswith("on")]
    assert set(found.tags) <= {"div", "img", "br", "pre", "span", "b"}, found.tags


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- no half-written files -----------------------------------------------------------------


def test_a_save_that_fails_midway_leaves_no_run_folder(tmp_path: Path) -> None:
    good = encoded(photo(), "PNG")
    broken = ImageData(b64_json=base64.b64encode(b"not a png").decode(), content=b"not a png")
    response = ImagesResponse(created=1, data=[ImageData(content=good), broken])
    with pytest.raises(Exception):  # noqa: B017 - any error; the point is what is left on disk
        response.save(tmp_path / "out")
    assert not (tmp_path / "out").exists() or listing(tmp_path / "out") == []


def test_write_run_never_replaces_a_run_folder_even_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / "run-001").mkdir()
    (tmp_path / "run-001" / "taken.txt").write_text("an earlier run")
    (tmp_path / "run-002").mkdir()
    folder = write_run(tmp_path, {"variation-01.png": b"x", "metadata.json": b"{}"})
    assert folder == tmp_path / "run-003"
    assert listing(tmp_path) == [
        "run-001",
        "run-001/taken.txt",
        "run-002",
        "run-003",
        "run-003/metadata.json",
        "run-003/variation-01.png",
    ]


def test_grid_save_that_fails_midway_leaves_no_partial_file(tmp_path: Path) -> None:
    """A picture PNG cannot hold (CMYK) after a good one: no empty or cut file stays."""
    grid = ii.ImageGrid([photo(), photo(mode="CMYK")])
    with pytest.raises(Exception):  # noqa: B017
        grid.save(tmp_path)
    for path in tmp_path.iterdir():
        with Image.open(path) as picture:
            picture.load()  # every file left is a complete PNG


@pytest.mark.parametrize("name", ["../x.png", "/etc/x.png", "a/b.png", "..", ".hidden", ""])
def test_write_run_refuses_paths_as_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a plain file name"):
        write_run(tmp_path, {name: b"x"})
    assert listing(tmp_path) == []


@pytest.mark.parametrize("prefix", ["../evil", "/tmp/evil", "sub/../../evil"])
def test_grid_save_never_writes_outside_its_folder(tmp_path: Path, prefix: str) -> None:
    inside = tmp_path / "inside"
    written: list[Path] = []
    with contextlib.suppress(ValueError, ii.IpyImagesError):  # refusing the prefix is right
        written = ii.ImageGrid([photo()]).save(inside, prefix=prefix)
    outside = [p for p in tmp_path.rglob("*.png") if inside not in p.parents]
    outside += [p for p in written if inside.resolve() not in p.resolve().parents]
    for stray in {p.resolve() for p in outside}:
        stray.unlink()
    assert not outside, f"prefix {prefix!r} wrote outside {inside}: {outside}"


# -- markup stays text -----------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_grid_titles_and_captions_are_escaped(hostile: str) -> None:
    grid = ii.ImageGrid([photo(), photo()], titles=[hostile, "ok"], caption=hostile)
    comparison = ii.ImageGrid.compare([(hostile, grid)])
    for markup in (grid.to_html(), comparison.to_html(), grid._repr_mimebundle_()["text/html"]):
        assert_inert(markup)
        assert "onerror=alert" not in markup.replace("onerror=alert(1)&gt;", "")


def test_a_hostile_file_name_is_escaped_in_the_result_grid(
    tmp_path: Path, loopback: LoopbackServer
) -> None:
    path = tmp_path / f"{HOSTILE[0]}.png"
    photo().save(path)
    response = ii.create_variation(
        str(path), backend="variations", base_url=loopback.base_url, n=1, size="256x256"
    )
    assert response.source.name == path.name
    markup = response._repr_mimebundle_()["text/html"]
    assert_inert(markup)
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup


def test_a_hostile_server_message_is_plain_text_and_escaped_where_shown(
    loopback: LoopbackServer,
) -> None:
    script = "<script>alert(1)</script>"
    loopback.enqueue(Fault.status(400, message=script))
    with pytest.raises(ii.BadRequestError) as caught:
        ii.create_variation(
            photo(), backend="variations", base_url=loopback.base_url, n=1, size="256x256"
        )
    assert str(caught.value) == f"400 invalid_request_error: {script}"
    # Where an error reaches HTML (the grid caption of a partial result), it is escaped.
    grid = ii.ImageGrid([photo()], caption=str(caught.value))
    assert_inert(grid.to_html())


# -- the project's server under garbage ----------------------------------------------------


@pytest.fixture(scope="module")
def server_root() -> object:
    from test_server import running  # the uvicorn-in-a-thread helper of the server's tests

    with running(max_body=1024 * 1024) as root:
        yield root


def _png_bomb() -> bytes:
    return png_header_claiming(100_000, 100_000)


GARBAGE: dict[str, tuple[dict[str, str], bytes]] = {
    "random bytes as multipart": (
        {"content-type": "multipart/form-data; boundary=xyz"},
        bytes(range(256)) * 40,
    ),
    "no boundary": ({"content-type": "multipart/form-data"}, b"--xyz\r\n\r\n"),
    "unterminated part": (
        {"content-type": "multipart/form-data; boundary=xyz"},
        b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG',
    ),
    "header flood": (
        {"content-type": "multipart/form-data; boundary=xyz"},
        b"--xyz\r\n" + b"X-A: " + b"a" * 200_000 + b"\r\n\r\n--xyz--\r\n",
    ),
    "json instead of a form": ({"content-type": "application/json"}, b'{"image": "x"}'),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_the_server_refuses_garbage_and_stays_up(server_root: str, name: str) -> None:
    headers, body = GARBAGE[name]
    answer = httpx.post(f"{server_root}/v1/images/variations", headers=headers, content=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert "error" in answer.json()
    assert httpx.get(f"{server_root}/health").json()["status"] == "ok"


def test_the_server_refuses_an_oversized_body_and_stays_up(server_root: str) -> None:
    files = {"image": ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(2 * 1024 * 1024), "image/png")}
    answer = httpx.post(f"{server_root}/v1/images/variations", files=files)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "image"
    assert httpx.get(f"{server_root}/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    "image",
    [_png_bomb(), png_header_claiming(9_000, 9_000), encoded(photo((64, 64)), "PNG")[:200]],
    ids=["bomb 100000x100000", "header 9000x9000", "truncated PNG"],
)
def test_the_server_refuses_bombs_and_broken_pngs_and_stays_up(
    server_root: str, image: bytes
) -> None:
    files = {"image": ("x.png", image, "image/png")}
    answer = httpx.post(
        f"{server_root}/v1/images/variations", files=files, data={"size": "256x256"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "image"
    assert httpx.get(f"{server_root}/health").json()["status"] == "ok"


def test_the_server_still_serves_real_work_after_the_garbage(server_root: str) -> None:
    files = {"image": ("ok.png", encoded(photo((64, 64)), "PNG"), "image/png")}
    data = {"size": "256x256", "response_format": "b64_json"}
    answer = httpx.post(f"{server_root}/v1/images/variations", files=files, data=data, timeout=60)
    assert answer.status_code == 200, answer.text
    content = base64.b64decode(answer.json()["data"][0]["b64_json"])
    assert Image.open(io.BytesIO(content)).size == (256, 256)
