"""Coffee's cup rim in the local engine's samples: this checkout against another revision.

The patch measures of benchmarks/engine.py do not see a kinked, notched or spouted rim:
each 7x7 patch of the bend still matches some curve of the source. This script measures
the rim's outline itself, on the shipped coffee photo (256 px, ``SAMPLES`` samples a
seed, drawn as benchmarks/engine_ab.py draws them). The rim is the largest bright (every
channel over 190 of 255) component in the top 65% of the picture, its hole filled in: the
cup's opening (tests/rim.py, which the engine's tests share). Per revision it prints the
means over the samples of

- outline: the 95th percentile of the opening's outline pixels' distance (px) from the
  ellipse of the same second moments; the input's own is printed first (about 1 px); a
  kink, a notch or a spout raises it to 4 px or more;
- over 4: how many samples' outline figure is over 4 px;
- width: the rim's width as a multiple of the input's (a cup widened by the seams);
- open: samples whose rim is not a closed ring (the opening fills less than half the
  ring's bounding box: the rim broken, or cut by the border), left out of the figures
  above.

Environment switches that an experiment reads reach both engines; the base revision
ignores those it does not know.

    python benchmarks/rims.py [--base main] [--seeds 0-3] [--diversity 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import engine as bench
import engine_ab as ab
import numpy as np
from PIL import ImageOps
from rim import opening, outline  # tests/rim.py, on the path that engine_ab sets

from ipy_images import sample_image

KINKED = 4.0
"""Outline figure (px) over which a rim reads as kinked, notched or spouted at 256 px."""


def width(filled: np.ndarray) -> int:
    return int(np.ptp(np.nonzero(filled)[1]) + 1)


def figures(samples: list[np.ndarray], input_width: int) -> str:
    openings = [opening(sample) for sample in samples]
    closed = [found for found in openings if found is not None]
    if not closed:
        return f"{'-':>8} {0:>3}/{len(samples):<3} {'-':>6} {len(samples):>5}"
    lines = np.array([outline(found) for found in closed])
    widths = np.array([width(found) / input_width for found in closed])
    return (
        f"{lines.mean():>8.2f} {np.sum(lines > KINKED):>3}/{len(samples):<3}"
        f" {widths.mean():>6.3f} {len(samples) - len(closed):>5}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--seeds", type=ab.seeds, default=ab.seeds("0-3"), help="e.g. 0-3")
    parser.add_argument("--diversity", type=float, default=1.0)
    args = parser.parse_args()
    import ipy_images.engine

    photo = ImageOps.fit(sample_image("coffee"), (bench.SIZE, bench.SIZE))
    source = np.asarray(photo)
    found = opening(source)
    assert found is not None  # the input's rim is a closed ring
    print(f"input: outline {outline(found):.2f} px")
    with tempfile.TemporaryDirectory(prefix="base_engine_") as folder:
        engines = {
            args.base: ab.base_engine(parser, args.base, Path(folder)),
            "checkout": ipy_images.engine.generate_variation,
        }
        print(
            f"{'coffee, diversity ' + format(args.diversity, 'g'):<24} outline  over 4  width  open"
        )
        for label, draw in engines.items():
            samples = [
                np.asarray(sample)
                for seed in args.seeds
                for sample in ab.draw_seed(draw, photo, seed, args.diversity)
            ]
            print(f"{label:<24}{figures(samples, width(found))}", flush=True)


if __name__ == "__main__":
    main()
