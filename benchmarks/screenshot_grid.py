"""Render a comparison grid in headless Chromium and save docs/comparison-grid.png.

Two photos from scikit-image, three variations each from the local engine, one row per
source; the page holds nothing but the grid's own HTML, as a notebook output would.

    python benchmarks/screenshot_grid.py [output.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE = """<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:16px;background:#fff;color:#000;font-family:sans-serif">
<div style="display:inline-block">{grid}</div></body></html>"""


def comparison_html() -> str:
    import skimage.data

    import ipy_images as ii

    photos = Path(skimage.data.__file__).parent
    rows = []
    for name, seed in (("coffee.png", 1), ("astronaut.png", 2)):
        response = ii.create_variation(
            photos / name, n=3, size="256x256", backend="local", seed=seed
        )
        rows.append((None, response))  # labelled by the source's file name
    return ii.ImageGrid.compare(rows, thumb_size=160).to_html()


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/comparison-grid.png")
    with tempfile.TemporaryDirectory() as folder:
        page_file = Path(folder) / "grid.html"
        page_file.write_text(PAGE.format(grid=comparison_html()), encoding="utf-8")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1100, "height": 600})
            page.goto(page_file.as_uri())
            page.locator("body > div").screenshot(path=str(target))
            browser.close()
    print(f"saved {target}")


if __name__ == "__main__":
    main()
