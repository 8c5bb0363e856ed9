"""Issue 14, client side: attacks from servers and sources that the client must hold.

Each test stages one attack of the issue with a real server on 127.0.0.1 that misbehaves
on purpose (the loopback images server, or `raw_server` for byte-level misbehaviour) or
with real files; every one failed on the code before the hardening.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import secrets
import struct
import subprocess
import threading
import time
import traceback
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from loopback import Fault, LoopbackServer

import ipy_images as ii
from ipy_images.models import ImageData, ImagesResponse

from .cases import encoded, photo
from .raw_server import RawServer, endless, fixed, trickle

MB = 1024 * 1024
VARIATIONS = "/v1/images/variations"


def client_options(base_url: str, **options: Any) -> dict[str, Any]:
    return {"backend": "variations", "base_url": base_url, "max_retries": 0, **options}


# -- 8. the size of an answer is bounded, and it is streamed ------------------------------


@pytest.mark.parametrize("declare", [True, False], ids=["declared-2GiB", "undeclared"])
def test_an_endless_json_answer_is_cut_off_at_the_cap(declare: bool) -> None:
    """Ten 1024 px images allow 68.5 MB; the server sends until the client hangs up
    (or 200 MB, where the unbounded client of before gave up)."""
    route = endless(b'{"created": 1, "data": [{"b64_json": "', declare=declare, stop_after=200 * MB)
    with RawServer({VARIATIONS: route}) as server:
        with pytest.raises(ii.APIConnectionError, match=r"larger than 68\.5 MB") as caught:
            ii.create_variation(
                photo(), n=10, size="1024x1024", **client_options(server.url + "/v1")
            )
        # Refused while streaming: at most the cap and what the sockets buffer got sent.
        assert server.sent[VARIATIONS] < 100 * MB
    assert "AAAA" not in str(caught.value)


def test_an_endless_result_url_is_cut_off_at_the_cap() -> None:
    """One 256x256 result may take at most about 0.4 MB, however it is encoded."""
    with RawServer({}) as server:
        answer = {"created": 1, "data": [{"url": f"{server.url}/result.png"}]}
        server.routes[VARIATIONS] = fixed(json.dumps(answer).encode())
        server.routes["/result.png"] = endless(
            b"\x89PNG\r\n\x1a\n", content_type="image/png", declare=False, stop_after=200 * MB
        )
        with pytest.raises(ii.APIConnectionError, match=r"larger than 0\.4 MB"):
            ii.create_variation(
                photo(),
                n=1,
                size="256x256",
                response_format="url",
                **client_options(server.url + "/v1"),
            )
        assert server.sent["/result.png"] < 40 * MB


def test_an_endless_error_answer_keeps_its_status_and_is_cut_short() -> None:
    """An error body is read only as far as a message could reach (64 kB): the status,
    and with it the typed error and the retry decision, survives any body."""
    route = endless(b'{"error": {"message": "', status=500, declare=False, stop_after=200 * MB)
    with RawServer({VARIATIONS: route}) as server:
        with pytest.raises(ii.InternalServerError) as caught:
            ii.create_variation(photo(), n=1, size="256x256", **client_options(server.url + "/v1"))
        assert server.sent[VARIATIONS] < 20 * MB
    assert caught.value.status_code == 500
    assert len(str(caught.value)) < 200


# -- 9. deeply nested JSON is a typed error -------------------------------------------------

DEEP = "[" * 20_000 + "]" * 20_000  # 40 kB: inside the 64 kB read of an error body


def test_deeply_nested_json_in_a_2xx_answer_is_a_connection_error(
    loopback: LoopbackServer,
) -> None:
    loopback.enqueue(Fault.status(200, body='{"created": 1, "data": ' + DEEP + "}"))
    with pytest.raises(ii.APIConnectionError, match="nested too deeply"):
        ii.create_variation(photo(), n=1, size="256x256", **client_options(loopback.base_url))


def test_deeply_nested_json_in_an_error_answer_is_a_status_error(
    loopback: LoopbackServer,
) -> None:
    loopback.enqueue(Fault.status(400, body='{"error": ' + DEEP + "}"))
    with pytest.raises(ii.BadRequestError) as caught:
        ii.create_variation(photo(), n=1, size="256x256", **client_options(loopback.base_url))
    assert caught.value.status_code == 400
    assert "without an error message" in str(caught.value)


# -- 10. a trickling source URL has a deadline --------------------------------------------


def test_a_source_url_that_trickles_is_refused_at_the_deadline() -> None:
    """One byte every 0.2 s never trips a per-read timeout; the client's timeout (2 s here)
    bounds the whole download."""
    with RawServer({"/slow.png": trickle(every=0.2)}) as server:
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                ii.create_variation(f"{server.url}/slow.png", backend="local", timeout=2)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(timeout=20)  # generous: the deadline is 2 s
        assert not worker.is_alive(), "the download of a trickling URL never ended"
    (error,) = outcome
    assert isinstance(error, ii.InvalidImageError)
    assert "did not finish downloading within 2 s" in str(error)


# -- 11. any recognisable piece of the key is masked everywhere ----------------------------

KEY = "sk-" + "proj-" + secrets.token_hex(20)
ECHOES = {
    "upper-cased": KEY.upper(),
    "without-last-char": KEY[:-1],
    "without-sk": KEY.removeprefix("sk-"),
    "middle-piece": KEY[9:29],
}


def leaked(text: str) -> list[str]:
    """Every 8-character piece of KEY found in `text`, compared case-insensitively."""
    lowered = text.lower()
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8].lower() in lowered]


def echoing(echo: str) -> Fault:
    return Fault.status(
        401,
        message=f"Incorrect API key provided: {echo}.",
        param=echo,
        headers={"x-request-id": f"req_{echo}"},
    )


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_an_echoed_key_is_masked_in_the_error_and_its_traceback(
    loopback: LoopbackServer, echo: str
) -> None:
    loopback.enqueue(echoing(echo))
    with pytest.raises(ii.AuthenticationError) as caught:
        ii.create_variation(
            photo(), n=1, size="256x256", api_key=KEY, **client_options(loopback.base_url)
        )
    error = caught.value
    assert loopback.requests[-1].authorization == f"Bearer {KEY}"
    assert error.request_id is not None and error.request_id.startswith("req_")
    shown = [str(error), repr(error), error.message, error.request_id, str(error.param)]
    shown.append("".join(traceback.format_exception(error)))
    assert not leaked("\n".join(shown)), shown


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[InteractiveShell]:
    """The process's shell with the extension loaded; one made here is cleared after, so
    other modules can still start their own (there is one per process)."""
    existing = InteractiveShell.initialized()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ipy_images")
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    photo((96, 96)).save(tmp_path / "photo.png")
    yield ip
    ip.run_line_magic("unload_ext", "ipy_images")
    if not existing:
        InteractiveShell.clear_instance()


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_an_echoed_key_is_masked_in_the_magics_usage_error(
    shell: InteractiveShell, loopback: LoopbackServer, echo: str
) -> None:
    loopback.enqueue(echoing(echo))
    line = f"-n 1 --size 256x256 --backend variations --base-url {loopback.base_url}"
    with capture_output() as captured, pytest.raises(UsageError) as caught:
        shell.run_cell_magic("variation", line, "photo.png")
    assert loopback.requests[-1].authorization == f"Bearer {KEY}"
    assert "401" in str(caught.value)
    assert not leaked(str(caught.value) + captured.stdout + captured.stderr)


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_an_echoed_key_is_masked_in_the_forms_saved_state(
    loopback: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, echo: str
) -> None:
    for name in ("OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    photo((96, 96)).save(tmp_path / "photo.png")
    loopback.enqueue(echoing(echo))
    form = ii.VariationForm()
    form.backend.value = "variations"
    form.base_url.value = loopback.base_url
    form.size.value = "256x256"
    form.source_text.value = str(tmp_path / "photo.png")
    with pytest.raises(ii.AuthenticationError):
        form.generate().result(timeout=60)
    assert loopback.requests[-1].authorization == f"Bearer {KEY}"
    assert "401" in form.status.value

    def states(widget: widgets.Widget) -> Iterator[str]:
        yield json.dumps(widget.get_state(), default=str)
        for child in getattr(widget, "children", ()):
            yield from states(child)

    assert not leaked("".join(states(form)))  # what a saved notebook holds


# -- 12. result images larger than the contract allows are refused --------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A real, fully decodable RGBA PNG of `width`x`height` transparent pixels, written
    without ever holding its pixels (a few MB of compressed zeros)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"\0" * ((width * 4 + 1) * 100)
    squeeze = zlib.compressobj(1)
    idat = b"".join(squeeze.compress(rows) for _ in range(height // 100))
    idat += squeeze.compress(b"\0" * ((width * 4 + 1) * (height % 100))) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_an_edits_answer_far_larger_than_the_contract_is_refused(
    loopback: LoopbackServer,
) -> None:
    """size="auto" with a GPT image model gives at most 1536x1024: 9400x9400 RGBA (376 MB
    of pixels) is refused from its header, before anything decodes it."""
    bomb = base64.b64encode(png_claiming(9400, 9400)).decode()
    answer = {"created": 1, "data": [{"b64_json": bomb}], "size": "auto"}
    loopback.enqueue(Fault.status(200, body=json.dumps(answer)))
    with pytest.raises(ii.APIError, match=r"9400x9400 image where size='auto' allows at most"):
        ii.create_variation(
            photo(), n=1, backend="edits", base_url=loopback.base_url, api_key=KEY, max_retries=0
        )
    assert len(loopback.requests) == 1


# -- 13. a full disk leaves nothing half-written ----------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: a real full disk, as far as the writer can tell."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def noise(side: int) -> Any:
    """A picture PNG cannot compress: `side`*`side`*3 bytes on disk."""
    from PIL import Image

    return Image.frombytes("RGB", (side, side), secrets.token_bytes(side * side * 3))


def test_grid_save_on_a_full_disk_leaves_nothing_behind(small_disk: Path) -> None:
    grid = ii.ImageGrid([noise(300) for _ in range(5)])  # about 1.35 MB of PNG
    with pytest.raises(OSError) as caught:
        grid.save(small_disk / "out")
    assert caught.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (small_disk / "out").iterdir()) == []


def test_response_save_on_a_full_disk_leaves_nothing_behind(small_disk: Path) -> None:
    pictures = [ImageData(content=encoded(noise(300), "PNG")) for _ in range(5)]
    with pytest.raises(OSError) as caught:
        ImagesResponse(created=1, data=pictures).save(small_disk / "out")
    assert caught.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (small_disk / "out").iterdir()) == []


# -- 14. concurrent saves into one folder each get their own run folder -------------------


def test_concurrent_saves_get_distinct_run_folders_and_replace_none(tmp_path: Path) -> None:
    """Two writers save 200 runs each into one folder while a third program keeps making
    empty run folders at the next free numbers: no save fails, none is lost, and none of
    the other program's folders is replaced."""
    response = ImagesResponse(created=1, data=[ImageData(content=encoded(photo(), "PNG"))])
    saved: list[Path] = []
    errors: list[BaseException] = []
    squatted: list[Path] = []
    done = threading.Event()

    def saver() -> None:
        for _ in range(200):
            try:
                saved.append(response.save(tmp_path))
            except Exception as exc:
                errors.append(exc)

    def squatter() -> None:
        while not done.is_set() and len(squatted) < 50:
            taken = {p.name for p in tmp_path.iterdir()}
            number = 1
            while f"run-{number:03d}" in taken:
                number += 1
            with contextlib.suppress(FileExistsError):
                (tmp_path / f"run-{number:03d}").mkdir()
                squatted.append(tmp_path / f"run-{number:03d}")
            time.sleep(0.01)

    savers = [threading.Thread(target=saver) for _ in range(2)]
    other = threading.Thread(target=squatter)
    for thread in (*savers, other):
        thread.start()
    for thread in savers:
        thread.join()
    done.set()
    other.join()

    assert not errors, f"{len(errors)} of 400 saves failed, e.g. {errors[0]!r}"
    assert len(set(saved)) == 400
    for folder in saved:
        assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "variation-01.png"]
    assert all(not any(folder.iterdir()) for folder in squatted), "a save replaced a folder"
    assert not list(tmp_path.glob(".*")), "a staging folder was left behind"
