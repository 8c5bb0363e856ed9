"""`%%variation` in a real InteractiveShell: local backend, loopback HTTP server, errors."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FAKE_API_KEY
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import CapturedIO, capture_output
from loopback import Fault, LoopbackServer
from PIL import Image

from ipy_images.magics import VariationMagics
from ipy_images.models import ImagesResponse

WRONG_KEY = "sk-" + "wrong-SENTINEL-77aa88bb99cc00dd"


class GatedServer(LoopbackServer):
    """A loopback server that holds every images request until `gate` is set."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.arrived = threading.Event()
        self.gate = threading.Event()

    def _post(self, handler: Any, path: str) -> None:
        self.arrived.set()
        self.gate.wait(60)
        super()._post(handler, path)

    def close(self) -> None:
        self.gate.set()
        super().close()


def photo(size: int = 96) -> Image.Image:
    """A small picture with structure (gradients and stripes), so variations differ."""
    y, x = np.mgrid[0:size, 0:size]
    pixels = np.stack([x * 255 // size, y * 255 // size, ((x // 8 + y // 8) % 2) * 200], -1)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.fixture(scope="module")
def ip() -> Iterator[InteractiveShell]:
    shell = start_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "ipy_images")
    yield shell
    shell.run_line_magic("unload_ext", "ipy_images")


@pytest.fixture(autouse=True)
def fresh(ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test: a photo at tmp/photo.png, no stale variables, default magic settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    photo().save(tmp_path / "photo.png")
    yield
    for name in ("out", "img", "arr"):
        ip.user_ns.pop(name, None)
    magics = magics_of(ip)
    for name, trait in magics.traits(config=True).items():
        setattr(magics, name, trait.default())
    # %config also writes the shell's config, which a later reload would read back.
    ip.config.pop("VariationMagics", None)


def magics_of(ip: InteractiveShell) -> VariationMagics:
    magics = ip.magics_manager.registry["VariationMagics"]
    assert isinstance(magics, VariationMagics)
    return magics


def run(ip: InteractiveShell, line: str, cell: str = "photo.png") -> CapturedIO:
    with capture_output() as captured:
        assert ip.run_cell_magic("variation", line, cell) is None
    return captured


def usage_error(ip: InteractiveShell, line: str, cell: str = "photo.png") -> str:
    with capture_output() as captured, pytest.raises(UsageError) as caught:
        ip.run_cell_magic("variation", line, cell)
    message = str(caught.value)
    assert message and "\n" not in message
    for key in (FAKE_API_KEY, WRONG_KEY):
        assert key not in message
        assert key not in captured.stdout + captured.stderr + repr(captured.outputs)
    return message


def final_output(captured: CapturedIO) -> dict[str, str]:
    """The last display: it must be a fresh display (not an update) of the finished grid."""
    last = captured.outputs[-1]
    assert not last.update
    return last.data


def http(server: LoopbackServer, rest: str = "") -> str:
    return f"--backend variations --base-url {server.base_url} --size 256x256 {rest}"


def test_extension_registers_magics_with_real_help(ip: InteractiveShell) -> None:
    doc = ip.find_cell_magic("variation").__doc__
    for option in ("-n N, --n N", "--response-format", "--base-url", "--seed", "--fit"):
        assert option in doc
    assert "-o NAME, --output NAME" in doc
    assert "--api-key-env NAME" in doc
    assert ip.find_line_magic("variation_form") is not None
    assert magics_of(ip) in ip.configurables


def test_variation_form_returns_the_form_for_display(ip: InteractiveShell) -> None:
    from ipy_images.widget import VariationForm

    magics_of(ip).n = 7  # the form starts from the magic's settings
    form = ip.run_line_magic("variation_form", "")
    assert isinstance(form, VariationForm)
    assert form.n.value == 7


def test_reload_replaces_the_magics(ip: InteractiveShell) -> None:
    ip.run_line_magic("reload_ext", "ipy_images")
    magics = [c for c in ip.configurables if isinstance(c, VariationMagics)]
    assert magics == [magics_of(ip)]
    assert ip.find_cell_magic("variation").__self__ is magics[0]


def test_local_backend_blocking_shows_progress_then_a_fresh_final_grid(
    ip: InteractiveShell,
) -> None:
    captured = run(ip, "-n 2 --size 256x256 --backend local --seed 1 -o out")
    out = ip.user_ns["out"]
    assert isinstance(out, ImagesResponse)
    assert len(out.data) == 2
    assert {image.size for image in out.images} == {(256, 256)}
    assert out.request is not None and out.request.seed == 1
    final = final_output(captured)
    assert final["text/html"].count("<img") == 3  # the original and two variations
    assert final["text/plain"].startswith("ImageGrid(original + 2 variations")
    # The progress display starts and ends blank and counts the images in between.
    progress = captured.outputs[:-1]
    display_id = progress[0].transient["display_id"]
    assert all(o.transient["display_id"] == display_id for o in progress)
    assert progress[0].data == progress[-1].data == {"text/plain": ""}
    statuses = [o.data["text/plain"] for o in progress[1:-1]]
    assert statuses[0] == "photo.png · 0 of 2 images · generating…"
    assert statuses[-1] == "photo.png · 2 of 2 images · generating…"


def test_several_sources_are_requested_concurrently_one_row_each(
    ip: InteractiveShell, loopback: LoopbackServer
) -> None:
    ip.user_ns["img"] = photo(80)
    ip.user_ns["arr"] = np.asarray(photo(64))
    cell = "# a comment\nphoto.png\n\n{img}\n  {arr[::2, ::2]}  \n"
    captured = run(ip, http(loopback, "-n 2 -o out"), cell)
    out = ip.user_ns["out"]
    assert list(out) == ["photo.png", "img", "arr[::2, ::2]"]
    assert all(len(response.data) == 2 for response in out.values())
    assert len(loopback.requests) == 3
    final = final_output(captured)
    assert final["text/plain"].startswith("ComparisonGrid(3 sources x 2 variations")
    assert final["text/html"].count("<img") == 9
    assert "photo.png, img, arr[::2, ::2] · 6 of 6 images · generating…" in [
        o.data["text/plain"] for o in captured.outputs
    ]


def test_url_sources_and_url_results(ip: InteractiveShell, loopback: LoopbackServer) -> None:
    run(ip, http(loopback, "-n 1 --response-format url -o out"))
    url = ip.user_ns["out"].data[0].url
    assert url.startswith(loopback.url)
    run(ip, http(loopback, "-n 1 -o out"), url)
    assert loopback.downloads  # the source line was fetched from the server
    assert loopback.requests[-1].file("image").image.size == (256, 256)
    assert len(ip.user_ns["out"].data) == 1


def test_edits_options_reach_the_server(
    ip: InteractiveShell, loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    line = (
        f"--backend edits --base-url {loopback.base_url} -n 1 --size 1024x1024 --quality low "
        "--image-background opaque --output-format webp --output-compression 60 "
        "--input-fidelity high --prompt 'same cup, other table' -o out"
    )
    captured = run(ip, line)
    fields = loopback.requests[-1].fields
    assert fields["quality"] == "low"
    assert fields["background"] == "opaque"
    assert fields["output_format"] == "webp"
    assert fields["output_compression"] == "60"
    assert fields["input_fidelity"] == "high"
    assert fields["prompt"] == "same cup, other table"
    assert ip.user_ns["out"].output_format == "webp"
    assert "gpt-image-2" in final_output(captured)["text/html"]


def test_config_sets_the_defaults(ip: InteractiveShell, loopback: LoopbackServer) -> None:
    for setting in (
        "VariationMagics.backend = 'variations'",
        f"VariationMagics.base_url = '{loopback.base_url}'",
        "VariationMagics.n = 3",
        "VariationMagics.size = '256x256'",
        "VariationMagics.thumb_size = 64",
    ):
        ip.run_line_magic("config", setting)
    with capture_output() as listing:
        ip.run_line_magic("config", "VariationMagics")
    for trait in ("backend", "n", "size", "model", "base_url", "response_format", "thumb_size"):
        assert f"VariationMagics.{trait}=" in listing.stdout
    assert "Current: 3" in listing.stdout
    captured = run(ip, "-o out")
    assert len(ip.user_ns["out"].data) == 3
    assert loopback.requests[-1].fields["n"] == "3"
    html = final_output(captured)["text/html"]
    assert html.count('width="64" height="64"') == 4  # thumb_size reached the grid
    run(ip, "-n 1 -o out")  # the magic line wins over the configured default
    assert loopback.requests[-1].fields["n"] == "1"


@pytest.mark.parametrize(
    ("line", "cell", "expected"),
    [
        ("--bogus", "photo.png", "unrecognized arguments: --bogus"),
        ("-n many", "photo.png", "invalid int value: 'many'"),
        ("--backend local --size 300x300", "photo.png", "size='300x300'"),
        ("--backend local --fit squash", "photo.png", "fit must be"),
        ("--backend nowhere", "photo.png", "unknown backend 'nowhere'"),
        ("--backend local -o 2x", "photo.png", "-o needs a Python variable name"),
        ("--backend local", "# only a comment\n\n", "the cell names no image"),
        ("--backend local", "photo.png\nmissing.png", "line 2: no such file: 'missing.png'"),
        ("--backend local", "notes.txt", "line 1: notes.txt: this is text, not an image"),
        ("--backend local", "{undefined_name}", "line 1 {undefined_name}: NameError"),
        ("--backend local", "{42}", "line 1 {42}: cannot read an image from a int"),
    ],
)
def test_mistakes_are_one_line_usage_errors(
    ip: InteractiveShell, line: str, cell: str, expected: str
) -> None:
    Path("notes.txt").write_text("not a picture\n")
    assert expected in usage_error(ip, line, cell)
    assert "out" not in ip.user_ns


@pytest.mark.parametrize(
    ("line", "cell"),
    [
        (f"--backend variations --api-key-env {FAKE_API_KEY}", "photo.png"),
        (f"--prompt {FAKE_API_KEY}", "photo.png"),
        ("--api-key abc123", "photo.png"),
        ("--api_key=abc123", "photo.png"),
        ("", f"photo.png\n{FAKE_API_KEY}"),
    ],
)
def test_literal_keys_are_refused(ip: InteractiveShell, line: str, cell: str) -> None:
    message = usage_error(ip, line, cell)
    assert message.startswith("API keys are not accepted on the magic line")


def test_key_shaped_words_inside_names_are_not_keys(
    ip: InteractiveShell, loopback: LoopbackServer
) -> None:
    Path("task-0123456789.png").write_bytes(Path("photo.png").read_bytes())
    run(ip, http(loopback, "-n 1 -o out"), "task-0123456789.png")
    assert len(ip.user_ns["out"].data) == 1


def test_http_errors_show_status_and_message_never_the_key(
    ip: InteractiveShell, loopback_with_key: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", WRONG_KEY)
    message = usage_error(ip, http(loopback_with_key, "-n 1"))
    assert message.startswith("401 invalid_request_error")
    assert "Incorrect API key" in message
    loopback_with_key.enqueue(
        Fault.status(400, message="Uploaded image must be square.", param="image")
    )
    monkeypatch.setenv("MY_KEY", FAKE_API_KEY)
    message = usage_error(ip, http(loopback_with_key, "-n 1 --api-key-env MY_KEY"))
    assert message == "400 invalid_request_error (param: image): Uploaded image must be square."
    # The key is read from the named variable: the server accepts it.
    run(ip, http(loopback_with_key, "-n 1 --api-key-env MY_KEY -o out"))
    assert loopback_with_key.requests[-1].authorization == f"Bearer {FAKE_API_KEY}"


def test_unset_key_variable_is_named(ip: InteractiveShell, loopback: LoopbackServer) -> None:
    message = usage_error(ip, http(loopback, "--api-key-env NO_SUCH_VARIABLE"))
    assert "NO_SUCH_VARIABLE" in message and "not set" in message
    assert loopback.requests == []


def test_failure_of_one_source_keeps_the_others(
    ip: InteractiveShell, loopback: LoopbackServer
) -> None:
    loopback.enqueue(Fault.status(403))
    with capture_output() as captured, pytest.raises(UsageError) as caught:
        ip.run_cell_magic("variation", http(loopback, "-n 1 -o out"), "photo.png")
    assert str(caught.value).startswith("403 invalid_request_error: You are not allowed")
    assert "out" not in ip.user_ns
    assert captured.outputs[-1].data == {"text/plain": ""}  # no grid, progress cleared
    # Two sources: whichever request comes first fails; the other's grid is shown and stored.
    loopback.enqueue(Fault.status(403))
    with capture_output() as captured, pytest.raises(UsageError) as caught:
        ip.run_cell_magic("variation", http(loopback, "-n 1 -o out"), "photo.png\nphoto.png")
    assert str(caught.value).startswith(("photo.png: 403", "photo.png (2): 403"))
    assert len(ip.user_ns["out"]) == 1
    assert final_output(captured)["text/html"].count("<img") == 2


def test_background_returns_at_once_and_fills_in(ip: InteractiveShell) -> None:
    with GatedServer() as server, capture_output() as captured:
        ip.run_cell_magic("variation", http(server, "-n 2 --background -o out"), "photo.png")
        assert server.arrived.wait(30)
        assert "out" not in ip.user_ns  # the request is still held by the server
        ip.run_cell("x = 1 + 1")  # the kernel is free meanwhile
        assert ip.user_ns["x"] == 2
        server.gate.set()
        wait_for(lambda: "out" in ip.user_ns)
        wait_for(lambda: "ImageGrid(" in captured.outputs[-1].data["text/plain"])
    assert len(ip.user_ns["out"].data) == 2
    first, *updates = captured.outputs
    display_id = first.transient["display_id"]
    assert first.data["text/plain"] == "photo.png · 0 of 2 images · generating…"
    assert all(o.update and o.transient["display_id"] == display_id for o in updates)
    assert [o.data["text/plain"] for o in updates[:-1]] == [
        f"photo.png · {done} of 2 images · generating…" for done in (1, 2)
    ]
    assert updates[-1].data["text/html"].count("<img") == 3


def test_background_errors_show_in_the_display(
    ip: InteractiveShell, loopback: LoopbackServer
) -> None:
    loopback.enqueue(Fault.status(404, message="No such model."))
    with capture_output() as captured:
        ip.run_cell_magic("variation", http(loopback, "-n 1 --background -o out"), "photo.png")
        wait_for(lambda: "UsageError" in captured.outputs[-1].data["text/plain"])
    assert captured.outputs[-1].data["text/plain"] == (
        "UsageError: 404 invalid_request_error: No such model."
    )
    assert "out" not in ip.user_ns


def test_variation_cancel_stops_background_runs(ip: InteractiveShell) -> None:
    with GatedServer() as server, capture_output() as captured:
        ip.run_cell_magic("variation", http(server, "-n 1 --background -o out"), "photo.png")
        assert server.arrived.wait(30)
        ip.run_line_magic("variation_cancel", "")
        wait_for(lambda: captured.outputs[-1].data["text/plain"] == "Cancelled.")
    assert "Cancelled 1 background run." in captured.stdout
    assert "out" not in ip.user_ns


def test_interrupt_cancels_a_blocking_run(ip: InteractiveShell) -> None:
    with GatedServer() as server:

        def interrupt_when_sent() -> None:
            if server.arrived.wait(30):
                os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_when_sent, daemon=True).start()
        with capture_output() as captured, pytest.raises(KeyboardInterrupt):
            ip.run_cell_magic("variation", http(server, "-n 1 -o out"), "photo.png")
    assert "out" not in ip.user_ns
    assert captured.outputs[-1].data == {"text/plain": ""}  # the progress line is cleared


def wait_for(condition: Any, deadline: float = 60) -> None:
    """Poll `condition` until true; fail after `deadline` seconds (not a timing assertion)."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.05)


def test_usage_line_names_the_cell_magic_and_var_stores_the_result(ip: InteractiveShell) -> None:
    doc = ip.find_cell_magic("variation").__doc__
    assert "%%variation [-n N]" in doc and "  %variation [" not in doc
    assert "--var NAME" in doc and "deprecated spelling of --var" in doc

    captured = run(ip, "--backend local -n 1 --size 256x256 --seed 3 --var out")
    assert len(ip.user_ns["out"].data) == 1 and captured.stderr == ""
    del ip.user_ns["out"]
    with pytest.warns(DeprecationWarning, match="-o is deprecated; use --var NAME"):
        run(ip, "--backend local -n 1 --size 256x256 --seed 3 -o out")
    assert len(ip.user_ns["out"].data) == 1  # the old spelling still works
    assert "--var needs a Python variable name" in usage_error(ip, "--backend local --var 2x")


def test_settings_are_checked_when_configured(ip: InteractiveShell) -> None:
    from traitlets import TraitError

    magics = magics_of(ip)
    for name, value in (("backend", "cloud"), ("size", "300x300"), ("response_format", "png")):
        with pytest.raises(TraitError, match=f"VariationMagics.{name} must be one of"):
            setattr(magics, name, value)
    with pytest.raises(TraitError):
        magics.n = 0
    magics.size = "512x512"  # a size some backend takes
    assert magics.size == "512x512"


def test_unset_key_variable_is_refused_for_every_backend(ip: InteractiveShell) -> None:
    message = usage_error(ip, "--backend local --api-key-env NO_SUCH_VARIABLE")
    assert "NO_SUCH_VARIABLE" in message and "not set" in message


def test_a_result_named_by_index_is_varied_with_its_lineage(
    ip: InteractiveShell, loopback: LoopbackServer
) -> None:
    run(ip, http(loopback, "-n 2 --var out"))
    first = ip.user_ns["img"] = ip.user_ns["out"]
    captured = run(ip, http(loopback, "-n 1 --var out"), "{img[1]}")
    second = ip.user_ns["out"]
    assert second.parent is first and second.parent_index == 1
    assert second.lineage == [first, second]
    uploaded = loopback.requests[-1].file("image").image.convert("RGB")
    assert np.array_equal(np.asarray(uploaded), np.asarray(first.images[1].convert("RGB")))
    assert "source photo-2.png" in final_output(captured)["text/html"]
    message = usage_error(ip, http(loopback, "-n 1"), "{img[2]}")
    assert message == (
        "line 1 {img[2]}: IndexError: image index 2 is out of range: "
        "this response holds 2 images (0 to 1)."
    )
