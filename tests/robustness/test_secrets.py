"""A sentinel API key goes through the CLI, notebooks, widgets, logs and saved files, including
an authentication failure and uncaught tracebacks; it must appear nowhere."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from loopback import LoopbackServer
from nbclient import NotebookClient

import ipy_images as ii

from .cases import photo

SENTINEL = "sk-SENTINEL-" + secrets.token_hex(16)
REPO = Path(__file__).resolve().parents[2]


def assert_absent(text: str, where: str) -> None:
    assert SENTINEL not in text, f"the API key leaked into {where}"
    assert SENTINEL[-8:] not in text, f"the key's last 8 characters leaked into {where}"


@pytest.fixture
def refusing() -> Iterator[LoopbackServer]:
    """A server that wants another key, so the sentinel gets a 401."""
    with LoopbackServer(api_key="sk-" + "the-right-key-0000000000") as server:
        yield server


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    photo().save(path)
    return path


def run_python(args: list[str], cwd: Path, key_in_env: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    if key_in_env:
        env["OPENAI_API_KEY"] = SENTINEL
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("key_on_command_line", [False, True], ids=["env", "--api-key"])
def test_cli_authentication_failure_never_shows_the_key(
    refusing: LoopbackServer, photo_file: Path, key_on_command_line: bool
) -> None:
    args = ["-m", "ipy_images.cli", "create-variation", "--image", str(photo_file)]
    args += ["--backend", "variations", "--base-url", refusing.base_url, "--size", "256x256"]
    args += ["--output-dir", "out"]
    if key_on_command_line:
        args += ["--api-key", SENTINEL]
    done = run_python(args, photo_file.parent, key_in_env=not key_on_command_line)
    assert done.returncode == 1, done.stderr
    assert "401" in done.stderr
    assert refusing.requests[-1].authorization == f"Bearer {SENTINEL}"  # it was really used
    assert_absent(done.stdout + done.stderr, "the CLI's output")


def test_an_uncaught_traceback_with_debug_logging_never_shows_the_key(
    refusing: LoopbackServer, photo_file: Path
) -> None:
    code = (
        "import logging, os, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        "import ipy_images\n"
        f"ipy_images.create_variation({str(photo_file)!r}, n=1, size='256x256',\n"
        f"    backend='variations', base_url={refusing.base_url!r},\n"
        "    api_key=os.environ['OPENAI_API_KEY'])\n"
    )
    done = run_python(["-c", code], photo_file.parent, key_in_env=True)
    assert "Traceback" in done.stderr and "AuthenticationError" in done.stderr
    assert "httpx" in done.stderr  # the debug logs were really on
    assert_absent(done.stdout + done.stderr, "a traceback or the debug log")


def test_saved_results_reprs_and_debug_logs_never_hold_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LoopbackServer(api_key=SENTINEL) as server, caplog.at_level(logging.DEBUG):
        options = {"backend": "variations", "base_url": server.base_url, "api_key": SENTINEL}
        client = ii.VariationClient(**options)
        response = client.create_variation(photo(), n=2, size="256x256")
        folder = response.save(tmp_path)
        with pytest.raises(ii.AuthenticationError) as caught:
            ii.create_variation(photo(), **{**options, "api_key": "sk-wrong-" + "0" * 20})
        texts = [
            repr(client),
            repr(client._client),
            repr(client._client._settings),
            repr(client._client._get_backend()),
            repr(response),
            json.dumps(response.to_dict()),
            json.dumps(response.metadata()),
            str(response._repr_mimebundle_()),
            str(caught.value),
            repr(caught.value),
            caplog.text,
        ]
        client.close()
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # debug logs were on
    for text in texts:
        assert_absent(text, text[:60])
    for path in folder.iterdir():
        assert_absent(path.read_bytes().decode("latin-1"), str(path))


def test_a_notebook_with_failures_tracebacks_and_widgets_never_saves_the_key(
    refusing: LoopbackServer, photo_file: Path
) -> None:
    url = refusing.base_url
    cells = [
        "import logging, os, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, force=True)\n"
        "import ipy_images as ii\n"
        "%load_ext ipy_images",
        f"%%variation -n 1 --size 256x256 --backend variations --base-url {url} -o r\nphoto.png",
        f"ii.create_variation('photo.png', n=1, size='256x256', backend='variations',\n"
        f"    base_url={url!r}, api_key=os.environ['OPENAI_API_KEY'])",
        f"form = ii.VariationForm(backend='variations', base_url={url!r})\n"
        "form.source_text.value = 'photo.png'\n"
        "try:\n"
        "    form.generate().result(timeout=60)\n"
        "except Exception as exc:\n"
        "    print('form failed:', type(exc).__name__)\n"
        "form",
        f"c = ii.VariationClient(backend='variations', base_url={url!r})\n"
        f"a = ii.AsyncVariationClient(backend='variations', base_url={url!r})\n"
        "print(repr(c), repr(a), repr(c._client._settings), vars(c._client))\n"
        "c",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL",)}
    env["OPENAI_API_KEY"] = SENTINEL
    env["PYTHONPATH"] = str(REPO)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        store_widget_state=True,
        resources={"metadata": {"path": str(photo_file.parent)}},
    )
    client.execute(env=env)
    saved = photo_file.parent / "secrets.ipynb"
    nbformat.write(notebook, saved)

    outputs = [cell.outputs for cell in notebook.cells]
    assert "UsageError: 401" in json.dumps(outputs[1])  # IPython prints it to stderr
    assert any(o.get("ename") == "AuthenticationError" for o in outputs[2]), outputs[2]
    assert "form failed: AuthenticationError" in json.dumps(outputs[3])
    assert "application/vnd.jupyter.widget-state+json" in notebook.metadata.get("widgets", {})
    assert len([r for r in refusing.requests if r.authorization == f"Bearer {SENTINEL}"]) == 3
    assert_absent(saved.read_text(encoding="utf-8"), "the saved notebook")
