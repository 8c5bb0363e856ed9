"""The widgets in a real browser: JupyterLab from PyPI, Debian's chromium via Playwright.

Each test starts JupyterLab on a free port with a fresh token and throw-away settings and
opens a notebook of tests/browser. The form test runs widget_form.ipynb, types a sample
image's path and n=3 into the form, clicks Generate and waits for the three variations
(plus the original) to show. The explorer test runs explorer.ipynb, clicks a thumbnail's
label, drags the wipe slider, presses "Vary this" and runs another cell meanwhile.
Screenshots go to test-artifacts/NAME.png (on failure, the whole page goes to
test-artifacts/NAME-failure.png); with IPY_IMAGES_UPDATE_DOCS=1 they are also copied
to docs/.

Missing chromium is a failure, not a skip: this is the only test of the real frontend.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ipy_images as ii

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = Path(__file__).resolve().parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
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


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab serving a folder holding the notebook, with isolated settings."""
    root = tmp_path / "root"
    root.mkdir()
    for notebook in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
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
    lab = Lab(f"http://127.0.0.1:{_free_port()}", secrets.token_hex(16), root)
    log = tmp_path / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--allow-root",
                f"--ServerApp.token={lab.token}",
                f"--ServerApp.port={lab.url.rsplit(':', 1)[1]}",
                "--ServerApp.port_retries=0",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.root_dir={root}",
            ],
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


@contextlib.contextmanager
def notebook_page(lab: Lab, notebook: str, artifact: str) -> Iterator[Any]:
    """A chromium page showing `notebook` with its kernel idle; on failure the whole page
    goes to test-artifacts/ARTIFACT-failure.png."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
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
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(f"{lab.url}/doc/tree/{notebook}?token={lab.token}")
            # The status bar says Idle only once the kernel is connected; a cell run before
            # that is dropped.
            expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()
            yield page
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{artifact}-failure.png"))
            raise
        finally:
            browser.close()


def run_cell(page: Any, cell: Any) -> None:
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def keep_screenshot(element: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    element.screenshot(path=str(ARTIFACTS / name))
    if os.environ.get("IPY_IMAGES_UPDATE_DOCS") == "1":
        shutil.copy(ARTIFACTS / name, ROOT / "docs" / name)


def test_form_generates_variations_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import expect

    # The kernel starts in the notebook's folder, so the bare file name is a valid path.
    ii.sample_image("coffee").save(lab.root / "coffee.png")

    with notebook_page(lab, "widget_form.ipynb", "widget-form") as page:
        cell = page.locator(".jp-Notebook .jp-CodeCell").first
        run_cell(page, cell)

        form = page.locator(".ipy-images-form")
        expect(form).to_be_visible()
        path_box = form.get_by_placeholder("notebooks/data/coffee.png", exact=False)
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
        keep_screenshot(cell, "widget-form.png")


def natural_width(image: Any) -> int:
    return int(image.evaluate("img => img.complete ? img.naturalWidth : 0"))


def test_explorer_inspects_wipes_and_varies_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import expect

    with notebook_page(lab, "explorer.ipynb", "explorer") as page:
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        run_cell(page, cells.nth(0))
        explorer = page.locator(".ipy-images-explorer")
        expect(explorer).to_be_visible(timeout=RUN_TIMEOUT_MS)
        rows = explorer.locator(".ipy-images-row")
        expect(rows).to_have_count(1)
        expect(rows.nth(0).locator(".ipy-images-cell")).to_have_count(4)  # source + 3
        thumbnail = rows.nth(0).locator(".ipy-images-cell img").nth(2)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )
        assert natural_width(thumbnail) == 96  # thumbnails are display-sized

        # Click a thumbnail (where it shows on screen): the inspected image arrives at
        # its own 256 px, while the thumbnail itself is 96 px.
        thumb_box = thumbnail.bounding_box()
        assert thumb_box is not None
        page.mouse.click(
            thumb_box["x"] + thumb_box["width"] / 2, thumb_box["y"] + thumb_box["height"] / 2
        )
        expect(explorer).to_contain_text("1.2 · 256x256 · full resolution")
        inspected = explorer.locator(".ipy-images-inspected")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth === 256", arg=inspected.element_handle()
        )
        assert natural_width(inspected) == 256
        assert int(inspected.evaluate("img => img.naturalHeight")) == 256

        # Drag the wipe: the composite changes (a new image, different pixels).
        wipe = explorer.locator(".ipy-images-wipe")
        wipe.scroll_into_view_if_needed()
        before_src = wipe.get_attribute("src")
        before_pixels = wipe.screenshot()
        handle = explorer.locator(".ipy-images-wipe-slider .noUi-handle")
        track = explorer.locator(".ipy-images-wipe-slider .noUi-target").bounding_box()
        box = handle.bounding_box()
        assert box is not None and track is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(
                box["x"] + box["width"] / 2 - step * 0.03 * track["width"],
                box["y"] + box["height"] / 2,
            )
        page.mouse.up()
        expect(wipe).not_to_have_attribute("src", before_src or "")
        page.wait_for_timeout(500)
        assert wipe.screenshot() != before_pixels
        keep_screenshot(explorer, "explorer.png")

        # "Vary this": a new row appears under 1.2; a cell runs while it fills in.
        explorer.get_by_role("button", name="Vary this").click()
        expect(rows).to_have_count(2)
        new_row = rows.nth(1)
        expect(new_row).to_contain_text("Row 2 · from 1.2")
        run_cell(page, cells.nth(1))
        output = cells.nth(1).locator(".jp-OutputArea-output")
        expect(output).to_contain_text("kernel answers: 42")
        assert "done" not in new_row.locator(".widget-html").first.inner_text()
        expect(new_row).to_contain_text("3 of 3 images · done", timeout=RUN_TIMEOUT_MS)
        expect(new_row.locator(".ipy-images-cell")).to_have_count(3)
        box_first, box_new = rows.nth(0).bounding_box(), new_row.bounding_box()
        assert box_first is not None and box_new is not None
        assert box_new["y"] > box_first["y"] and box_new["x"] > box_first["x"]  # under, indented
        expect(explorer).to_contain_text("Done: 3 variations of 1.2.")
        keep_screenshot(explorer, "explorer-vary.png")
