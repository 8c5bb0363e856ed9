"""The `ipy-images` command, run as a real subprocess (`python -m ipy_images.cli`).

`create-variation` runs against the local engine and against a real `ipy-images serve`
subprocess; its stdout must be an `ImagesResponse` (tests/spec.py) and its errors one
line on stderr with exit status 2 (usage) or 1 (API).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import spec
from loopback import LoopbackServer
from PIL import Image, ImageDraw

TOKEN = "sk-class-token-5d1c0b2a9e"
WRONG = "sk-wrong-token-abcdefghij"
REPO = Path(__file__).resolve().parents[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's OpenAI settings, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "IPY_IMAGES_BACKEND",
            "IPY_IMAGES_SERVER_API_KEY",
        )
    }
    return {**env, **extra}


def cli(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ipy_images.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(**env),
        timeout=300,
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The single stderr line of a failed run, after checking status and empty stdout."""
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def square_png(tmp_path: Path) -> Path:
    image = Image.new("RGB", (72, 72), (230, 220, 190))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 40, 64), fill=(30, 80, 150))
    draw.ellipse((30, 20, 66, 56), fill=(190, 50, 40))
    path = tmp_path / "square.png"
    image.save(path)
    return path


class Served:
    """`ipy-images serve --port 0` as a subprocess; the base URL is read from its stdout."""

    def __init__(self, *args: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ipy_images.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(**env),
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first.startswith("ipy-images: serving"):
            self.process.kill()
            raise RuntimeError(f"serve did not start: {first!r} {self.process.stderr.read()!r}")
        self.base_url = first.split()[-1]
        # Drain both pipes so a chatty server can never block on a full pipe.
        self.stdout: list[str] = [first]
        self.stderr: list[str] = []
        for stream, sink in (
            (self.process.stdout, self.stdout),
            (self.process.stderr, self.stderr),
        ):
            threading.Thread(target=lambda s=stream, o=sink: o.extend(s), daemon=True).start()

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served("--log-level", "warning", IPY_IMAGES_SERVER_API_KEY=TOKEN)
    try:
        yield server
    finally:
        status = server.stop()
    assert status == 0  # Ctrl-C is the normal, clean way to stop it
    assert TOKEN not in "".join(server.stdout + server.stderr)


# --- help and usage errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ((), ("create-variation", "serve", "demo")),
        (("create-variation",), ("--image", "--n", "--response-format", "--size", "--output-dir")),
        (("serve",), ("--host", "--port", "--api-key", "--workers", "127.0.0.1")),
        (("demo",), ("--output-dir", "--seed", "offline")),
    ],
)
def test_help_of_every_command(command: tuple[str, ...], expected: tuple[str, ...]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0
    for word in expected:
        assert word in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "choose a command"),
        (("create-variation",), "required: -I/--image"),
        (("create-variation", "--image", "x.png", "--n", "two"), "invalid int value"),
        (("create-variation", "--image", "x.png", "--backend", "cloud"), "invalid choice"),
        (("create-variation", "--image", "missing.png"), "no such file"),
        (("create-variation", "--image", "{png}", "--n", "0"), "n must be between"),
        (("create-variation", "--image", "{png}", "--size", "300x300"), "size='300x300'"),
        (("create-variation", "--image", "{png}", "--response-format", "url"), "b64_json"),
        (("create-variation", "--image", "{text}"), "this is text, not an image"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: tuple[str, ...], message: str, square_png: Path
) -> None:
    text = square_png.with_name("notes.txt")
    text.write_text("not a picture")
    args = tuple(a.format(png=square_png, text=text) for a in args)
    line = one_error_line(cli(*args), 2)
    assert line.startswith("ipy-images") and ": error: " in line
    assert message in line


# --- create-variation ----------------------------------------------------------------


LOCAL_ARGS = ("--n", "2", "--size", "256x256", "--seed", "5")
SAVED_NAMES = ["metadata.json", "original.png", "variation-01.png", "variation-02.png"]


def test_create_variation_on_the_local_engine_prints_json(square_png: Path) -> None:
    result = cli("create-variation", "--image", str(square_png), *LOCAL_ARGS)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    spec.validate_images_response(body)
    assert len(body["data"]) == 2 and all("b64_json" in item for item in body["data"])


def test_output_dir_prints_the_saved_paths_not_the_base64(square_png: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(
        "create-variation", "--image", str(square_png), *LOCAL_ARGS, "--output-dir", str(out)
    )
    assert result.returncode == 0, result.stderr
    run = out / "run-001"
    assert result.stdout.splitlines() == [str(run / name) for name in SAVED_NAMES]
    assert len(result.stdout) < 1_000  # the JSON would be 100s of KB
    assert result.stderr.splitlines()[-1] == f"ipy-images: wrote 4 files to {run}"
    assert sorted(p.name for p in run.iterdir()) == SAVED_NAMES
    assert Image.open(run / "variation-01.png").size == (256, 256)
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["backend"] == "local" and metadata["params"]["seed"] == 5


def test_print_json_with_output_dir_prints_the_full_json_and_saves(
    square_png: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = (*LOCAL_ARGS, "--output-dir", str(out), "--print-json")
    result = cli("create-variation", "--image", str(square_png), *args)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    spec.validate_images_response(body)
    assert all(len(item["b64_json"]) > 1_000 for item in body["data"])
    assert sorted(p.name for p in (out / "run-001").iterdir()) == SAVED_NAMES
    assert f"wrote 4 files to {out / 'run-001'}" in result.stderr


def test_an_output_dir_that_is_a_file_fails_before_any_image_is_made(
    square_png: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    line = one_error_line(
        cli("create-variation", "--image", str(square_png), "--output-dir", str(taken)), 1
    )
    assert line.startswith("ipy-images: error:") and str(taken) in line
    assert taken.read_text() == "a file, not a folder"


def test_create_variation_against_the_served_subprocess(served: Served, square_png: Path) -> None:
    result = cli(
        "create-variation",
        "--image",
        str(square_png),
        "--n",
        "1",
        "--size",
        "256x256",
        "--response-format",
        "url",
        "--backend",
        "variations",
        "--base-url",
        served.base_url,
        OPENAI_API_KEY=TOKEN,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    spec.validate_images_response(body)
    (item,) = body["data"]
    assert item["url"].startswith(served.base_url)
    picture = Image.open(io.BytesIO(httpx.get(item["url"]).content))
    assert picture.size == (256, 256)


def test_an_api_error_exits_1_without_showing_the_key(served: Served, square_png: Path) -> None:
    result = cli(
        "create-variation",
        "--image",
        str(square_png),
        "--base-url",
        served.base_url,
        "--api-key",
        WRONG,
        "--size",
        "256x256",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    warning, error = result.stderr.splitlines()
    assert warning.startswith("ipy-images: warning:") and "shell history" in warning
    assert error.startswith("ipy-images: error: 401") and "Incorrect API key" in error
    assert WRONG not in result.stderr and WRONG[:-4] not in result.stderr


# --- serve ---------------------------------------------------------------------------


def test_serve_reports_a_busy_port_in_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        line = one_error_line(cli("serve", "--port", port), 1)
    assert line.startswith("ipy-images: error:") and "in use" in line


def test_serve_finishes_in_flight_requests_on_sigterm(square_png: Path) -> None:
    server = Served("--log-level", "warning")
    answers: list[httpx.Response] = []

    def ask() -> None:
        form: dict[str, Any] = {"n": "2", "size": "256x256", "response_format": "b64_json"}
        files = {"image": ("a.png", square_png.read_bytes())}
        url = f"{server.base_url}/images/variations"
        answers.append(httpx.post(url, data=form, files=files, timeout=120))

    try:
        request = threading.Thread(target=ask)
        request.start()
        health = server.base_url.removesuffix("/v1") + "/health"
        while httpx.get(health).json()["in_flight"] == 0:
            time.sleep(0.02)
        status = server.stop(signal.SIGTERM)
        request.join()
    finally:
        server.stop(signal.SIGKILL)
    assert status == -signal.SIGTERM  # stopped by the signal, after finishing the work
    (answer,) = answers
    assert answer.status_code == 200
    spec.validate_images_response(answer.json())
    assert len(answer.json()["data"]) == 2


# --- demo ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One `ipy-images demo --n 1` run (stderr a pipe, not a terminal) and its folder."""
    tmp_path = tmp_path_factory.mktemp("demo")
    result = cli("demo", "--n", "1", "--output-dir", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result, tmp_path


def test_demo_writes_pngs_and_a_page_that_fits_the_window(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, tmp_path = demo_run
    page = tmp_path / "demo" / "index.html"
    assert f"open {Path('demo') / 'index.html'}" in result.stdout
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<img") == 4  # two originals, one variation each
    for name in ("coffee", "astronaut"):
        assert name in html
        run = tmp_path / "demo" / name / "run-001"
        assert (run / "variation-01.png").is_file() and (run / "original.png").is_file()
    # rows wrap instead of running off a 1,280 px window (docs/demo-page.png shows it)
    assert "nowrap" not in html and "flex-wrap:wrap" in html
    assert max(int(px) for px in re.findall(r"width:(\d+)px", html)) <= 260


def test_demo_reports_each_image_when_stderr_is_not_a_terminal(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, _ = demo_run
    first, *images = result.stderr.splitlines()
    assert first == "ipy-images demo: making 2 images on this machine"
    assert [line.split(" · ")[0] for line in images] == [
        "ipy-images demo: 1/2 images",
        "ipy-images demo: 2/2 images",
    ]
    assert re.search(r" · \d+ s elapsed · about \d+ s left \((coffee|astronaut) #1\)$", images[0])
    assert re.search(r" · \d+ s elapsed · done \((coffee|astronaut) #1\)$", images[1])
    assert "\r" not in result.stderr and "\x1b" not in result.stderr  # no bar in a log


def test_a_terminal_gets_a_bar_redrawn_in_place(square_png: Path) -> None:
    image = (str(square_png), *LOCAL_ARGS)
    primary, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # a full pty buffer would block the command
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 4096):
                chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ipy_images.cli", "create-variation", "--image", *image],
            stdout=subprocess.PIPE,
            stderr=secondary,
            cwd=REPO,
            env=clean_env(),
            timeout=300,
        )
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(primary)
    assert result.returncode == 0
    spec.validate_images_response(json.loads(result.stdout))  # stdout stays pure JSON
    screen = b"".join(chunks).decode()
    assert screen.startswith("\ripy-images: [------------------------] 0/2 images")
    assert "] 1/2 images · " in screen
    assert "\ripy-images: [########################] 2/2 images · " in screen
    assert screen.endswith(" · done\x1b[K\r\n")  # the pty turns the last \n into \r\n


# --- mirroring `openai images create-variation` -----------------------------------------


def test_with_a_server_the_defaults_are_the_official_ones(
    square_png: Path, loopback: LoopbackServer
) -> None:
    result = cli("create-variation", "--image", str(square_png), "--base-url", loopback.base_url)
    assert result.returncode == 0, result.stderr
    (request,) = loopback.requests
    assert request.fields["size"] == "1024x1024" and request.fields["response_format"] == "url"
    assert request.fields["n"] == "1"
    body = json.loads(result.stdout)
    spec.validate_images_response(body)
    assert [set(item) for item in body["data"]] == [{"url"}]


def test_an_unknown_flag_points_at_the_commands_help(square_png: Path) -> None:
    line = one_error_line(cli("create-variation", "--image", str(square_png), "--bogus"), 2)
    assert "unrecognized arguments: --bogus" in line
    assert "see 'ipy-images create-variation --help'" in line


def test_help_documents_the_local_defaults_and_our_extensions() -> None:
    result = cli("create-variation", "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    assert "--size 1024x1024, --response-format url" in text  # with a server
    assert "local backend (this machine, no key) returns images inline (256x256, b64_json)" in text
    assert "--n above 10 (fanned out into concurrent requests)" in text
    assert "local: 256x256 (default), 512x512, 1024x1024" in text
