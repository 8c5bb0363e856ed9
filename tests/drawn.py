"""Pictures drawn in code: the low-detail inputs whose cost issue 13 bounds (a photo's
time at most twice), used by the engine's tests and by benchmarks/engine_cost.py, a
dense texture (pebbles), also varied by benchmarks/engine_ab.py, and thin uprights in a
sky (launch_pad)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw


def flat() -> Image.Image:
    """The smallest input accepted, one colour: every patch is the same."""
    return Image.new("RGB", (16, 16), "black")


def logo() -> Image.Image:
    """Two flat shapes on white."""
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((48, 48, 208, 208), fill=(200, 30, 30))
    draw.rectangle((112, 16, 144, 240), fill=(20, 20, 160))
    return image


def line_art() -> Image.Image:
    """Thin black strokes on white: most patches are white, the rest nearly alike."""
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    for step in range(8):
        draw.ellipse(
            (16 + 8 * step, 16 + 12 * step, 240 - 8 * step, 240 - 4 * step), outline="black"
        )
        draw.line((0, 32 * step, 255, 255 - 32 * step), fill="black")
    return image


def text() -> Image.Image:
    """Twelve lines of small black text on white."""
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    for line in range(12):
        draw.text((8, 8 + 20 * line), "The quick brown fox jumps over", fill="black")
    return image


def noise() -> Image.Image:
    """Uniform random colours: no two patches alike."""
    pixels = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def launch_pad(*, faint: bool = False) -> Image.Image:
    """Two thin uprights (a rocket's towers) in a plain evening sky (SKY), on a ground of
    detail with a plain way through it; ``faint`` ones are the sky with FAINT more red, as
    a lattice against the sky is, and 2 px wide, else UPRIGHT and 3 px wide."""
    pixels = np.broadcast_to(sky()[:, None], (256, 256, 3)).copy()
    pixels[206:] = np.random.default_rng(0).integers(0, 160, (50, 256, 3))
    pixels[206:, 120:140] = pixels[205, 128]
    for top, left in ((30, 70), (60, 180)):
        if faint:
            pixels[top:206, left : left + 2, 0] += FAINT
        else:
            pixels[top:206, left : left + 3] = UPRIGHT
    return Image.fromarray(np.uint8(pixels))


def sky() -> np.ndarray:
    """launch_pad's sky, row by row (256 rows, RGB levels): darker towards the top."""
    return np.float32([25, 40, 90]) + 0.15 * np.arange(256, dtype=np.float32)[:, None]


UPRIGHT = (200, 90, 60)
"""launch_pad's uprights' colour."""
FAINT = 40
"""How much redder than the sky launch_pad's faint uprights are, in levels of 255."""


def pebbles() -> Image.Image:
    """A dense texture: 900 outlined pebbles of random greys, overlapping on dark ground."""
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (256, 256), (60, 55, 50))
    draw = ImageDraw.Draw(image)
    for _ in range(900):
        x, y = rng.uniform(-8, 264, 2)
        rx, ry = rng.uniform(3, 9, 2)
        grey = int(rng.integers(90, 230))
        box = (x - rx, y - ry, x + rx, y + ry)
        draw.ellipse(box, fill=(grey, grey - 8, grey - 16), outline=(40, 36, 32))
    return image


LOW_DETAIL: dict[str, Callable[[], Image.Image]] = {
    "flat": flat,
    "logo": logo,
    "line art": line_art,
    "text": text,
    "noise": noise,
}
"""The kinds of input the issue names, each at most twice a photo's time to vary."""
