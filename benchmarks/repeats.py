"""How often the local engine draws the same picture twice, against another revision of it.

Every (seed, index) pair draws from its own random stream (issue 13's first defect), but
two streams can still land on the same re-composition: the seams follow a photo's few
plain corridors, and of the drafts the engine keeps one by a score (see
ipy_images/engine/_gpnn.seams_start). For each photo this draws ``SAMPLES`` samples at
256 px for every seed, from the engine at ``--base`` and from this checkout's, and prints
for each engine:

- same: the pairs of samples (any seeds, any indexes) whose mean absolute difference is
  under SAME (pixels in [0, 1]), the bound tests/test_engine.py's
  test_consecutive_seeds_share_no_image holds two samples to; on coffee, the astronaut
  and chelsea such pairs are one picture at a glance (the cup at the same place and
  width), but where most of a photo is plain (rocket's sky) samples that differ where
  the things stand are that near too, so read it beside the median;
- pairs: how many pairs there are;
- median: the median pair's difference;
- nearest: the nearest pair's difference and its two (seed, index) pairs: under 0.01
  the same picture (coffee's seed 5 index 1 and seed 6 index 2 were 1e-5 apart on the
  branch engine-41s, drawn from two different drafts).

    python benchmarks/repeats.py [--base main] [--photos coffee,astronaut] [--seeds 0-7]

With the defaults (5 photos, 8 seeds) it draws 320 samples: about 10 minutes here.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import engine as bench
import numpy as np
from engine_ab import (
    PHOTOS,
    SAMPLES,
    Draw,
    base_engine,
    checkout_engine,
    draw_seed,
    photo_names,
    pictures,
    seeds,
)
from PIL import Image

SAME = 0.03
Key = tuple[int, int]


def repeats(
    draw: Draw, image: Image.Image, seed_list: list[int]
) -> tuple[int, int, float, float, Key, Key]:
    """Pairs under SAME, all pairs, the median pair's difference and the nearest pair
    (difference, key, key) of ``draw``'s samples of ``image`` over ``seed_list``."""
    drawn: dict[Key, np.ndarray] = {}
    for seed in seed_list:
        for index, sample in enumerate(draw_seed(draw, image, seed, 1.0)):
            drawn[(seed, index)] = bench.to_array(sample)
    pairs = [
        (float(np.abs(drawn[a] - drawn[b]).mean()), a, b)
        for a, b in itertools.combinations(drawn, 2)
    ]
    differences = [difference for difference, _, _ in pairs]
    same = sum(difference < SAME for difference in differences)
    return same, len(pairs), float(np.median(differences)), *min(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--photos", default=",".join(PHOTOS), help="comma-separated photos")
    parser.add_argument("--seeds", type=seeds, default=seeds("0-7"), help="e.g. 0-7 or 0,4")
    args = parser.parse_args()
    checkout = checkout_engine(parser)
    photos = pictures()
    names = photo_names(parser, args.photos, photos)
    with tempfile.TemporaryDirectory(prefix="base_engine_") as folder:
        engines: dict[str, Draw] = {
            "base": base_engine(parser, args.base, Path(folder)),
            "checkout": checkout,
        }
        print(
            f"{args.base} (base) against this checkout: {SAMPLES} samples a seed, seeds"
            f" {args.seeds}, diversity 1; same: pairs under {SAME} mean difference"
        )
        print(
            f"{'photo':<21} {'engine':<9} {'same':>5} {'pairs':>6} {'median':>7}"
            f" {'nearest':>8}  between"
        )
        for name in names:
            image = bench.square(photos[name])
            for label, draw in engines.items():
                same, total, median, nearest, a, b = repeats(draw, image, args.seeds)
                print(
                    f"{name:<21} {label:<9} {same:>5} {total:>6} {median:>7.4f}"
                    f" {nearest:>8.4f}  {a} {b}"
                )


if __name__ == "__main__":
    main()
