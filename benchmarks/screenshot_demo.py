"""Run `ipy-images demo` and photograph its page in headless Chromium: docs/demo-page.png.

The window is 1,280 px wide, the narrow end of common laptop screens; the page must fit it
with no cut-off column (it wraps in narrower ones). Prints how many pictures are cut off.

    python benchmarks/screenshot_demo.py [output.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import ViewportSize, sync_playwright
from screenshot_grid import CHROMIUM_ARGS

WINDOW: ViewportSize = {"width": 1280, "height": 900}
# Pictures reaching past the window or past a box that clips or scrolls them: such a box
# (overflow other than visible) hides what overflows it, so the page width alone misleads.
CUT_OFF_PICTURES = """[...document.images].filter(img => {
  let limit = window.innerWidth;
  for (let box = img.parentElement; box; box = box.parentElement) {
    if (getComputedStyle(box).overflowX !== "visible") {
      limit = Math.min(limit, box.getBoundingClientRect().right);
    }
  }
  return img.getBoundingClientRect().right > limit + 0.5;
}).length"""


def main(output: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "ipy_images.cli", "demo"], cwd=folder, check=True)
        page_path = Path(folder) / "ipy-images-demo" / "index.html"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport=WINDOW)
            page.goto(page_path.as_uri())
            cut = page.evaluate(CUT_OFF_PICTURES)
            total = page.evaluate("document.images.length")
            print(f"{cut} of {total} pictures cut off in a {WINDOW['width']} px window")
            page.screenshot(path=str(output), full_page=True)
            browser.close()
    print(f"wrote {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/demo-page.png"))
