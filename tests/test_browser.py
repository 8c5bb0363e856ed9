"""JupyterLab in a real browser: JupyterLab from PyPI, Debian's chromium via Playwright.

The README's notebook command (`jupyter lab notebooks/01_quickstart.ipynb`, run in the
repository) must open JupyterLab on the quickstart with a running kernel; its screenshot goes
to test-artifacts/quickstart-in-jupyterlab.png.

The form test starts JupyterLab on a free port with a fresh token and throw-away settings,
opens tests/browser/widget_form.ipynb, runs it, types a sample image's path and n=3 into
the form, clicks Generate and waits for the three variations (plus the original) to show.
The screenshot goes to test-artifacts/widget-form.png (on failure, the whole page goes to
test-artifacts/widget-form-failure.png); with IPY_IMAGES_UPDATE_DOCS=1 it is also copied
to docs/widget-form.png.

Missing chromium is a failure, not a skip: these are the only tests of the real frontend.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import ipy_images as ii

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = Path(__file__).resolve().parent / "browser" / "widget_form.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / "test-artifacts" / "widget-form.png"
FAILURE_ARTIFACT = ROOT / "test-artifacts" / "widget-form-failure.png"
DOCS_SCREENSHOT = ROOT / "docs" / "widget-form.png"
QUICKSTART_ARTIFACT = ROOT / "test-artifacts" / "quickstart-in-jupyterlab.png"
README = ROOT / "README.md"
SERVER_START_TIMEOUT = 120  # seconds; a cold JupyterLab start takes 20-40 s here
RUN_TIMEOUT_MS = 240_000  # three local variations on a shared 2-core machine
UI_TIMEOUT_MS = 90_000  # the kernel starting, widgets rendering


@dataclass
class Lab:
    url: str
    token: str
    root: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_status(lab: Lab, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer /api/status in time:\n{log.read_text()}")


@contextlib.contextmanager
def _running_lab(args: list[str], *, cwd: Path, tmp_path: Path) -> Iterator[Lab]:
    """`jupyter lab ARGS` run in `cwd` on a free port with a fresh token, isolated settings
    and this checkout's ipy_images; stopped on exit."""
    config = tmp_path / "config"
    (config / "labconfig").mkdir(parents=True)
    # No "news" announcement popping up over the notebook.
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env.update(
        IPY_IMAGES_BACKEND="local",  # the form's "auto" backend: no network, no key
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    lab = Lab(f"http://127.0.0.1:{_free_port()}", secrets.token_hex(16), cwd)
    log = tmp_path / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                *args,
                "--allow-root",
                f"--ServerApp.token={lab.token}",
                f"--ServerApp.port={lab.url.rsplit(':', 1)[1]}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
            ],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_status(lab, process, log)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving a folder holding the notebook, with isolated settings."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    args = ["--no-browser", f"--ServerApp.root_dir={root}"]
    with _running_lab(args, cwd=root, tmp_path=tmp_path) as lab:
        yield lab


def _chromium(playwright: Playwright) -> Browser:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def test_form_generates_variations_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    # The kernel starts in the notebook's folder, so the bare file name is a valid path.
    ii.sample_image("coffee").save(lab.root / "coffee.png")

    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(f"{lab.url}/doc/tree/{NOTEBOOK.name}?token={lab.token}")

            cell = page.locator(".jp-Notebook .jp-CodeCell").first
            # The status bar says Idle only once the kernel is connected; a cell run before
            # that is dropped.
            expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+Enter")

            form = page.locator(".ipy-images-form")
            expect(form).to_be_visible()
            path_box = form.get_by_placeholder("https://", exact=False)
            path_box.fill("coffee.png")
            path_box.press("Enter")
            expect(form.locator(".ipy-images-preview img")).to_have_count(1)
            n_box = form.get_by_label("n", exact=True)
            n_box.fill("3")
            n_box.press("Enter")
            form.get_by_role("button", name="Generate").click()

            history = form.locator(".ipy-images-history")
            expect(history).to_contain_text("3 of 3 images · done", timeout=RUN_TIMEOUT_MS)
            assert history.locator("img").count() == 4  # the original and three variations
            expect(history.locator("img[alt^='#']")).to_have_count(3)
            expect(form.get_by_role("button", name="Generate")).to_be_enabled()
            expect(form).to_contain_text("Done: 3 images.")

            ARTIFACT.parent.mkdir(exist_ok=True)
            cell.screenshot(path=str(ARTIFACT))
        except Exception:
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(FAILURE_ARTIFACT))
            raise
        finally:
            browser.close()
    if os.environ.get("IPY_IMAGES_UPDATE_DOCS") == "1":
        shutil.copy(ARTIFACT, DOCS_SCREENSHOT)


def _readme_notebook_command() -> list[str]:
    """The README's command that opens the quickstart, from `jupyter lab` on."""
    (line,) = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("pip install") and "&& jupyter lab " in line
    ]
    return shlex.split(line.split("&&", 1)[1])


def test_readme_notebook_command_opens_the_quickstart(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    program, subcommand, *args = _readme_notebook_command()
    assert (program, subcommand) == ("jupyter", "lab")
    # The "web browser" the command opens records the address it was given, as the user's
    # browser would receive it; chromium then follows that address.
    opened = tmp_path / "opened"
    browser_command = f"sh -c 'echo \"$0\" > {opened}' %s"
    args = [*args, f"--ServerApp.browser={browser_command}"]
    with _running_lab(args, cwd=ROOT, tmp_path=tmp_path), sync_playwright() as playwright:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not opened.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert opened.is_file(), "jupyter lab opened no browser"
        browser = _chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(opened.read_text().strip())
            expect(page).to_have_url(re.compile(r"/lab/tree/01_quickstart\.ipynb$"))
            heading = page.locator(".jp-Notebook h1", has_text="Quickstart: variations of a photo")
            expect(heading).to_be_visible()
            # The kernel (ipykernel, from the [jupyter] extra) started and is connected.
            expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()
        finally:  # what the user would see, kept whether the checks passed or not
            QUICKSTART_ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(QUICKSTART_ARTIFACT))
            browser.close()
