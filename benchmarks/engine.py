"""Benchmark of the local variation engine (ipy_images.engine) at 256x256.

For three photos (the two shipped samples and scikit-image's chelsea, which is not
shipped), four samples each with fixed seeds, it prints:

- seconds per sample, one sample at a time on one thread, and two at a time on two
  threads as the local backend runs them (wall time / samples, and each call's latency);
- coherence: mean squared distance (pixels in [0, 1], per patch value) from output 7x7
  patches to their nearest input patch (target <= 0.001), with a flipped-and-cropped copy
  of the input as a reference;
- completeness: the same from input patches to the outputs (target <= 0.003);
- diversity: per-pixel std of grey values across the samples, averaged, divided by the
  input's grey std, as in SinGAN (target >= 0.25);
- the smallest 1 - SSIM between a sample and the input (target >= 0.05: no near-copy).

Run: python benchmarks/engine.py [--grids DIR]   (DIR gets input + samples PNG strips)
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import skimage.data
from PIL import Image, ImageOps
from skimage.metrics import structural_similarity

from ipy_images import sample_image
from ipy_images.engine import generate_variation

SIZE = 256
SEEDS = (0, 1, 2, 3)
PATCH = 7
QUERIES = 4000
"""Patches sampled per image for the patch-distance measures (exact search over all)."""


@dataclass
class Row:
    photo: str
    single: float
    cpu: float
    pair_wall: float
    pair_latency: float
    coherence: float
    completeness: float
    diversity: float
    min_dissimilarity: float
    reference: float
    deterministic: bool


def square(image: Image.Image) -> Image.Image:
    """Centre crop to a square, as the client's default fit="crop" does."""
    side = min(image.size)
    return ImageOps.fit(image, (side, side), method=Image.LANCZOS)


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def patches(pixels: np.ndarray) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (PATCH, PATCH), axis=(0, 1))
    return np.ascontiguousarray(windows.reshape(-1, 3 * PATCH * PATCH))


def patch_distance(queries_from: list[np.ndarray], keys_from: list[np.ndarray]) -> float:
    """Mean over sampled patches of ``queries_from`` of the squared distance to the nearest
    patch of ``keys_from`` (all of them), per patch value."""
    index = faiss.IndexFlatL2(3 * PATCH * PATCH)
    for pixels in keys_from:
        index.add(patches(pixels))
    rng = np.random.default_rng(0)
    distances = []
    for pixels in queries_from:
        all_queries = patches(pixels)
        chosen = all_queries[rng.choice(len(all_queries), QUERIES, replace=False)]
        distances.append(index.search(chosen, 1)[0][:, 0])
    return float(np.mean(np.concatenate(distances)) / (3 * PATCH * PATCH))


def grey(pixels: np.ndarray) -> np.ndarray:
    return pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def flipped_and_cropped(pixels: np.ndarray) -> np.ndarray:
    """The input mirrored and cropped by 10% a side, back at full size: a trivial variant."""
    side = pixels.shape[0]
    margin = side // 10
    image = Image.fromarray(np.uint8(np.rint(pixels[:, ::-1] * 255)))
    image = image.crop((margin, margin, side - margin, side - margin))
    return to_array(image.resize((side, side), Image.LANCZOS))


def generate(image: Image.Image, seed: int) -> tuple[Image.Image, float, float]:
    """The sample, its wall time and its CPU time (this thread only)."""
    start, cpu = time.perf_counter(), time.thread_time()
    out = generate_variation(image, size=SIZE, seed=seed)
    return out, time.perf_counter() - start, time.thread_time() - cpu


def measure(photo: str, image: Image.Image, grids: Path | None) -> Row:
    single = [generate(image, seed) for seed in SEEDS]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        pair = list(pool.map(lambda seed: generate(image, seed), SEEDS))
    pair_wall = (time.perf_counter() - start) / len(SEEDS)
    outputs = [to_array(out) for out, _, _ in single]
    deterministic = all(
        np.array_equal(a, to_array(b)) for a, (b, _, _) in zip(outputs, pair, strict=True)
    )
    source = to_array(image.resize((SIZE, SIZE), Image.LANCZOS))
    if grids is not None:
        strip = Image.new("RGB", (SIZE * (len(SEEDS) + 1) + 16, SIZE), "white")
        strip.paste(Image.fromarray(np.uint8(np.rint(source * 255))), (0, 0))
        for i, (out, _, _) in enumerate(single):
            strip.paste(out, (16 + SIZE * (i + 1), 0))
        strip.save(grids / f"engine_{photo}.png")
    source_grey = grey(source)
    greys = np.stack([grey(o) for o in outputs])
    return Row(
        photo=photo,
        single=float(np.mean([t for _, t, _ in single])),
        cpu=float(np.mean([c for _, _, c in single])),
        pair_wall=pair_wall,
        pair_latency=float(np.mean([t for _, t, _ in pair])),
        coherence=patch_distance(outputs, [source]),
        completeness=patch_distance([source], outputs),
        diversity=float(greys.std(axis=0).mean() / source_grey.std()),
        min_dissimilarity=min(
            1 - structural_similarity(source_grey, g, data_range=1.0) for g in greys
        ),
        reference=patch_distance([flipped_and_cropped(source)], [source]),
        deterministic=deterministic,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=Path, help="directory for input + samples PNG strips")
    args = parser.parse_args()
    photos = {
        "coffee": sample_image("coffee"),
        "astronaut": sample_image("astronaut"),
        "chelsea": Image.fromarray(skimage.data.chelsea()),
    }
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    generate(square(photos["coffee"]), 99)  # warm-up: imports and first-call costs
    rows = [measure(name, square(image), args.grids) for name, image in photos.items()]
    print(f"engine benchmark: {SIZE}x{SIZE}, seeds {list(SEEDS)}, {os.cpu_count()} cores")
    print(f"(load average at start: {load}; other jobs may share the machine)")
    columns = [  # title, target, width, format, value
        ("s/1thr", "", 7, ".2f", lambda r: r.single),
        ("cpu s", "", 6, ".2f", lambda r: r.cpu),
        ("s/2thr", "<=2.5", 7, ".2f", lambda r: r.pair_wall),
        ("lat2thr", "", 7, ".2f", lambda r: r.pair_latency),
        ("coher.", "<=0.001", 8, ".5f", lambda r: r.coherence),
        ("flip+crop", "(ref.)", 9, ".5f", lambda r: r.reference),
        ("compl.", "<=0.003", 8, ".5f", lambda r: r.completeness),
        ("divers.", ">=0.25", 7, ".3f", lambda r: r.diversity),
        ("1-SSIM", ">=0.05", 7, ".3f", lambda r: r.min_dissimilarity),
        ("same", "seed", 5, "", lambda r: "yes" if r.deterministic else "NO"),
    ]
    print(f"{'photo':<10}" + "".join(f" {c[0]:>{c[2]}}" for c in columns))
    print(f"{'target':<10}" + "".join(f" {c[1]:>{c[2]}}" for c in columns))
    for row in rows:
        print(f"{row.photo:<10}" + "".join(f" {c[4](row):>{c[2]}{c[3]}}" for c in columns))
    print(
        "s/1thr: wall s per sample, one at a time (cpu s: its CPU time); s/2thr: wall time of"
        " the 4 samples run two at a time on two threads / 4 (lat2thr: mean time of one call"
        " then); 1-SSIM: smallest over the samples; same seed: the two-thread run reproduced"
        " the one-thread samples exactly."
    )


if __name__ == "__main__":
    main()
