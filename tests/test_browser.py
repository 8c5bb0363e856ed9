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

The explorer test runs tests/browser/explorer.ipynb: it clicks a thumbnail and checks the
inspected image's natural size, drags the wipe slider and sees the image change, presses
"Vary this" and runs another cell while the new row fills in under the chosen image. Its
screenshots go to test-artifacts/explorer*.png (and docs/ with IPY_IMAGES_UPDATE_DOCS=1).

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
from typing import TYPE_CHECKING, Any

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
    """JupyterLab serving a folder holding the notebooks of tests/browser, with isolated
    settings."""
    root = tmp_path / "root"
    root.mkdir()
    for notebook in NOTEBOOK.parent.glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
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


def natural_width(image: Any) -> int:
    return int(image.evaluate("img => img.complete ? img.naturalWidth : 0"))


def test_explorer_inspects_wipes_and_varies_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page.goto(f"{lab.url}/doc/tree/explorer.ipynb?token={lab.token}")
            expect(page.locator(".jp-StatusBar-TextItem", has_text="| Idle")).to_be_visible()
            _check_explorer(page)
        except Exception:
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT.parent / "explorer-failure.png"))
            raise
        finally:
            browser.close()


def _check_explorer(page: Any) -> None:
    from playwright.sync_api import expect

    def run_cell(cell: Any) -> None:
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")

    def keep_screenshot(element: Any, name: str) -> None:
        ARTIFACT.parent.mkdir(exist_ok=True)
        element.screenshot(path=str(ARTIFACT.parent / name))
        if os.environ.get("IPY_IMAGES_UPDATE_DOCS") == "1":
            shutil.copy(ARTIFACT.parent / name, ROOT / "docs" / name)

    cells = page.locator(".jp-Notebook .jp-CodeCell")
    run_cell(cells.nth(0))
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

    # Click a thumbnail (where it shows on screen): the inspected image arrives at its own
    # 256 px, while the thumbnail itself is 96 px.
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
    run_cell(cells.nth(1))
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
