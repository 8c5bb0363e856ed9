"""What one sample of the local engine costs, by kind of picture and by output size.

Issue 13 bounds the engine's cost: any input (flat, logo, line art, text, noise) at most
2x a photo's time at the same size, and a 1024 px output at most 4x a 256 px one. This
prints, per case, the wall seconds of one sample on one thread: the least and the median
of ``--repeats`` fresh samples (seeds 0, 1, ...; the engine's pyramid cache emptied
first, so each pays for its search indexes as a new picture does), and the least as a
multiple of the reference's least. The reference, coffee at 256 px, is timed in the same
run and the cases take turns, so a busy moment on a shared machine falls on all of them;
the least is the figure to compare, since load only ever adds time.

The low-detail pictures are those of the engine's tests (tests/drawn.py), at the size
they are drawn (the flat one is the smallest input accepted, 16 px), each varied at
256 px. The sizes are the two bundled photos, centre-cropped square (coffee 341 px, the
astronaut 512 px), varied at 256, 512 and 1024 px.

    python benchmarks/engine_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from drawn import LOW_DETAIL

from ipy_images import sample_image
from ipy_images.engine import SIZES, WORK_SIZE, _gpnn, generate_variation

REFERENCE = ("coffee", WORK_SIZE)


def seconds(image: Image.Image, size: int, seed: int) -> float:
    """Wall time of one fresh sample: the pyramid cache emptied first."""
    _gpnn.clear_cache()
    start = time.perf_counter()
    generate_variation(image, size=size, seed=seed)
    return time.perf_counter() - start


def cases() -> dict[tuple[str, int], Image.Image]:
    """Each case's input by (name, output size), the reference first."""
    photos = {name: sample_image(name) for name in ("coffee", "astronaut")}
    squares = {name: ImageOps.fit(photo, (min(photo.size),) * 2) for name, photo in photos.items()}
    found = {(name, size): square for name, square in squares.items() for size in SIZES}
    found.update({(name, WORK_SIZE): draw() for name, draw in LOW_DETAIL.items()})
    return {REFERENCE: found.pop(REFERENCE), **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh samples per case")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    pictures = cases()
    timings: dict[tuple[str, int], list[float]] = {case: [] for case in pictures}
    for seed in range(args.repeats):
        for (name, size), picture in pictures.items():
            timings[name, size].append(seconds(picture, size, seed))

    reference = min(timings[REFERENCE])
    print(f"one sample, one thread, {args.repeats} fresh samples per case; x: least / coffee 256's")
    print(f"{'picture':<12}{'size':>6}{'least s':>10}{'median s':>10}{'x':>7}")
    for (name, size), runs in timings.items():
        least = min(runs)
        print(
            f"{name:<12}{size:>6}{least:>10.2f}{statistics.median(runs):>10.2f}"
            f"{least / reference:>7.2f}"
        )


if __name__ == "__main__":
    main()
