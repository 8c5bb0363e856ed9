"""`%%variation` in a real ipykernel driven by nbclient, the way Run All and CI execute it."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator

import nbformat
import pytest
from conftest import FAKE_API_KEY
from loopback import LoopbackServer
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode
from test_magics import WRONG_KEY, GatedServer, photo


class Kernel:
    """One kernel; each `run` appends a cell to the notebook and executes it."""

    def __init__(self, client: NotebookClient, notebook: NotebookNode) -> None:
        self.client = client
        self.notebook = notebook

    def run(self, source: str) -> NotebookNode:
        cell = nbformat.v4.new_code_cell(source)
        self.notebook.cells.append(cell)
        self.client.execute_cell(cell, len(self.notebook.cells) - 1)
        return cell

    def fail(self, source: str) -> tuple[CellExecutionError, NotebookNode]:
        with pytest.raises(CellExecutionError) as caught:
            self.run(source)
        return caught.value, self.notebook.cells[-1]

    def stdout(self, source: str) -> str:
        return "".join(
            o.get("text", "") for o in self.run(source).outputs if o.get("name") == "stdout"
        )


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    folder = tmp_path_factory.mktemp("notebook")
    photo().save(folder / "photo.png")
    notebook = nbformat.v4.new_notebook()
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=180,
        resources={"metadata": {"path": str(folder)}},
    )
    unset = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "IPY_IMAGES_BACKEND")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["WRONG_KEY"] = WRONG_KEY
    with client.setup_kernel(env=env):
        kernel = Kernel(client, notebook)
        kernel.run("%load_ext ipy_images\nfrom PIL import Image\nimg = Image.open('photo.png')")
        yield kernel
    outputs = json.dumps([cell.outputs for cell in notebook.cells])
    assert FAKE_API_KEY not in outputs and WRONG_KEY not in outputs


def html_of(output: NotebookNode) -> str:
    return output["data"].get("text/html", "")


def test_local_backend_ends_with_a_fresh_grid(kernel: Kernel) -> None:
    cell = kernel.run("%%variation -n 2 --size 256x256 --backend local --seed 4 -o out\n{img}")
    progress, final = cell.outputs
    # nbclient applied the progress updates: the progress display ends blank.
    assert progress["output_type"] == final["output_type"] == "display_data"
    assert progress["data"] == {"text/plain": ""}
    assert html_of(final).count("<img") == 3
    assert final["data"]["text/plain"].startswith("ImageGrid(original + 2 variations, 256x256")
    assert kernel.stdout("print(type(out).__name__, len(out.data), out.request.seed)") == (
        "ImagesResponse 2 4\n"
    )


def test_config_and_several_sources(kernel: Kernel, loopback: LoopbackServer) -> None:
    kernel.run(
        "%config VariationMagics.backend = 'variations'\n"
        f"%config VariationMagics.base_url = '{loopback.base_url}'\n"
        "%config VariationMagics.size = '256x256'\n"
        "%config VariationMagics.n = 2"
    )
    assert "Current: 'variations'" in kernel.stdout("%config VariationMagics")
    cell = kernel.run("%%variation -o rows\nphoto.png\n{img.rotate(90)}")
    assert cell.outputs[-1]["data"]["text/plain"].startswith("ComparisonGrid(2 sources x 2")
    assert html_of(cell.outputs[-1]).count("<img") == 6
    assert kernel.stdout("print(list(rows))") == "['photo.png', 'img.rotate(90)']\n"
    assert len(loopback.requests) == 2
    kernel.run("%config VariationMagics.backend = None\n%config VariationMagics.base_url = None")


@pytest.mark.parametrize(
    ("line", "cell", "expected"),
    [
        ("--bogus", "photo.png", "unrecognized arguments: --bogus"),
        ("--backend local -n 0", "photo.png", "n must be between 1 and"),
        ("--backend local", "missing.png", "line 1: no such file: 'missing.png'"),
        ("--backend local", "{nothing_here}", "line 1 {nothing_here}: NameError"),
        (f"--api-key-env {FAKE_API_KEY}", "photo.png", "API keys are not accepted"),
    ],
)
def test_errors_are_one_line(kernel: Kernel, line: str, cell: str, expected: str) -> None:
    assert_one_line_usage_error(kernel, f"%%variation {line}\n{cell}", expected)


def test_http_error_shows_status_and_message(
    kernel: Kernel, loopback_with_key: LoopbackServer
) -> None:
    source = (
        f"%%variation -n 1 --backend variations --base-url {loopback_with_key.base_url} "
        "--size 256x256 --api-key-env WRONG_KEY\nphoto.png"
    )
    assert_one_line_usage_error(kernel, source, "401 invalid_request_error: Incorrect API key")


def assert_one_line_usage_error(kernel: Kernel, source: str, expected: str) -> None:
    error, cell = kernel.fail(source)
    assert error.ename == "UsageError"
    # One stderr line and no traceback; at most the progress display, cleared.
    [output] = [o for o in cell.outputs if o["output_type"] != "display_data"]
    assert all(o["data"] == {"text/plain": ""} for o in cell.outputs if o is not output)
    assert output["output_type"] == "stream" and output["name"] == "stderr"
    assert output["text"].startswith(f"UsageError: {expected}")
    assert output["text"].count("\n") == 1
    assert FAKE_API_KEY not in output["text"] and WRONG_KEY not in output["text"]


def test_background_leaves_the_kernel_free(kernel: Kernel) -> None:
    with GatedServer() as server:
        started = kernel.run(
            f"%%variation -n 2 --background --backend variations --base-url {server.base_url} "
            "--size 256x256 -o bg\nphoto.png"
        )
        assert server.arrived.wait(60)
        # The request is held by the server, so the run is certainly still in progress.
        assert kernel.stdout("early = 'bg' in globals()\ny = 1 + 1\nprint(early, y)") == (
            "False 2\n"
        )
        server.gate.set()
        waited = kernel.stdout(
            "import time\n"
            "deadline = time.monotonic() + 120\n"
            "while 'bg' not in globals() and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            "print(len(bg.data))"
        )
    assert waited == "2\n"
    [status] = started.outputs
    assert status["data"]["text/plain"] == "photo.png · 0 of 2 images · generating…"


def test_local_background_run_leaves_the_kernel_free(kernel: Kernel) -> None:
    kernel.run("%%variation -n 2 --size 256x256 --backend local --seed 5 --background -o lb\n{img}")
    # A blocked kernel would run this only after the engine (seconds per image) finished.
    assert kernel.stdout("print('lb' in globals())") == "False\n"
    waited = kernel.stdout(
        "import time\n"
        "deadline = time.monotonic() + 180\n"
        "while 'lb' not in globals() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(len(lb.data), lb.request.seed)"
    )
    assert waited == "2 5\n"


def test_interrupt_cancels_a_blocking_run(kernel: Kernel) -> None:
    pid = kernel.client.km.provisioner.process.pid
    with GatedServer() as server:

        def interrupt_when_sent() -> None:
            if server.arrived.wait(60):
                os.kill(pid, signal.SIGINT)

        threading.Thread(target=interrupt_when_sent, daemon=True).start()
        error, cell = kernel.fail(
            f"%%variation -n 1 --backend variations --base-url {server.base_url} "
            "--size 256x256 -o never\nphoto.png"
        )
    assert error.ename == "KeyboardInterrupt"
    assert cell.outputs[0]["data"] == {"text/plain": ""}  # progress cleared
    assert kernel.stdout("print('never' in globals())") == "False\n"
