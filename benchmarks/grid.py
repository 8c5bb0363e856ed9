"""Embedded bytes and render time of ImageGrid beside mediapy and ipyplot.

An original plus 10 variations at 1024x1024 (real photos from scikit-image, made distinct
with noise, shifts and flips), each library asked to display them. Each library's output is
captured from IPython's display machinery, as a notebook would store it, and measured.

    python benchmarks/grid.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output
from PIL import Image

SIZE = 1024
THUMB = 256  # displayed size, the same for every library


def photos() -> tuple[np.ndarray, list[np.ndarray]]:
    """The original (coffee) and 10 distinct variations of three photos."""
    from skimage import data

    def square(array: np.ndarray) -> np.ndarray:
        h, w = array.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(array[top : top + side, left : left + side])
        return np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS))

    bases = [square(data.coffee()), square(data.astronaut()), square(data.chelsea())]
    rng = np.random.default_rng(0)
    variations = []
    for i in range(10):
        base = bases[i % 3]
        shifted = np.roll(base, shift=(37 * i, 53 * i), axis=(0, 1))
        if i % 2:
            shifted = shifted[:, ::-1]
        noisy = shifted.astype(np.int16) + rng.normal(0, 6, shifted.shape).astype(np.int16)
        variations.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return bases[0], variations


def measure(show: Callable[[], object]) -> tuple[int, float]:
    """Bytes of every output `show` displays (all MIME types, as stored) and seconds taken."""
    with capture_output(stdout=False, stderr=False, display=True) as captured:
        start = time.perf_counter()
        show()
        seconds = time.perf_counter() - start
    size = sum(
        len(value.encode() if isinstance(value, str) else value)
        for output in captured.outputs
        for value in output.data.values()
    )
    return size, seconds


def main() -> None:
    import ipyplot
    import mediapy

    from ipy_images.grid import ImageGrid

    InteractiveShell.instance()  # display() then goes to a capturable display publisher
    original, variations = photos()
    everything = [original, *variations]

    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "ImageGrid (thumb_size=256)",
            lambda: display(ImageGrid(variations, original=original, thumb_size=THUMB)),
        ),
        ("mediapy.show_images (defaults)", lambda: mediapy.show_images(everything)),
        (
            "mediapy.show_images (height=256)",
            lambda: mediapy.show_images(everything, height=THUMB),
        ),
        (
            "ipyplot.plot_images (img_width=256)",
            lambda: ipyplot.plot_images(everything, img_width=THUMB),
        ),
    ]
    print(f"original + {len(variations)} variations, {SIZE}x{SIZE} RGB photos")
    print(f"{'library':40} {'embedded':>12} {'render':>9}")
    for name, show in cases:
        size, seconds = measure(show)
        print(f"{name:40} {size / 1e6:9.3f} MB {seconds:8.3f} s")
    print("targets for ImageGrid: <= 0.300 MB and <= 0.300 s")


if __name__ == "__main__":
    main()
