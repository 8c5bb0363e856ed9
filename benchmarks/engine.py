"""Benchmark of the local variation engine: the engine before issue 13 against today's.

For five scikit-image photos the package does not ship and the two it ships, four
samples each at 256x256, from the OLD engine (``ipy_images/engine`` at commit 641051d,
loaded from the git history under another name, so no copy of it is kept) and the NEW one
(this checkout), side by side in the same run. Per photo and engine it prints:

- s/smp: wall seconds per sample, the four samples run two at a time on two threads (the
  old engine's one at a time: two of its calls at once race inside the OpenBLAS that
  faiss bundles, where each builds its own PCA, and under load its pictures changed from
  run to run; one at a time they are the same every run, and its s/smp about doubles);
- coher.: mean squared distance (per patch value, pixels in [0, 1]) from output 7x7
  patches to their nearest input patch; compl.: the same from input patches to the outputs;
- worst: the 95th percentile of those output-patch distances (seams, smears);
- coarse: coher. after reducing input and output to 64 px (broken objects, layouts);
- c.cpl: compl. at 64 px, from the input's patches to the output's: what the samples
  dropped. Coarse alone rewards dropping content: hubble_deep_field's samples with large
  empty black regions score as coherent, since black patches are the input's too;
- copy: over the samples, the largest share of output patches whose nearest input patch
  sits at one common offset (+-1 px); a shifted copy of the input scores about 0.9;
- repeat: at 64 px, the share of the output's distinctive content (weighted by how unlike
  the rest of the input each source patch is) whose source region also appears far away
  in the same output: a subject drawn twice (two faces, four eyes). Coherence, worst and
  coarse cannot see this: a duplicated face is made of perfectly coherent patches. The
  input itself scores 0, its left half drawn twice side by side 0.97. Patches that are not
  the input's (a mirrored copy scores 0.8) read as repeats too, so it is meant for outputs
  made of input patches, as both engines' are;
- divers.: per-pixel std of grey values across the samples, averaged, divided by the
  input's grey std (SinGAN's measure);
- div.in: the same over the pixels inside the input's frame, if it has one (a margin of one
  colour joined to the border, as the engine finds it: retina's black corners), else equal
  to divers. SinGAN's measure is dominated by such a frame: its contrast sets the input's
  std, and samples that move the frame into the picture score high. The retina's samples
  that lost the round field scored 0.29-0.33; since the engine keeps the frame, its samples
  score about 0.09, and 0.26 inside the frame. The targets use div.in.

Then a calibration: the same measures on the input itself made into pictures a person
judges at a glance: mirrored, zoomed in 1.1x and turned 5 degrees (new photos of the same
subject, which the patch measures still score as far from the input, since their patches
are not the input's), its halves swapped (one seam through the middle) and its quarters
shuffled (a collage), beside both engines' means.

Then the new engine's diversity knob sweep (0.5, 1, 2, 3): the measured diversity (div.in) of 4
samples at each of seeds 0 to 3, their mean and spread. One 4-sample measure varies by
about 0.05 from seed to seed, as much as a step of the knob moves it, so whether one seed's
values rise is largely luck; the mean over seeds says what the knob does. With ``--sheets DIR``,
two contact sheets per photo: NAME.png (input + 4 samples; old row above new row) and
NAME-knob.png (the new engine's samples at each diversity of the sweep, one row each).

    python benchmarks/engine.py [--sheets docs/engine] [--parallel] [--photos a,b]

``--parallel`` runs one process per photo, each pinned to two cores (for a quiet machine
with many cores); without it the photos run one after the other on this machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import itertools
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import faiss
import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageOps

from ipy_images import sample_image

SIZE = 256
SAMPLES = 4
SWEEP = (0.5, 1.0, 2.0, 3.0)
SWEEP_SEEDS = 4
PATCH = 7
QUERIES = 4000
"""Output patches sampled per image for the patch-distance measures (exact search)."""
COARSE = 64
OLD_COMMIT = "641051d"
OLD_ENGINE_DIR = "OLD_ENGINE_DIR"
"""The environment variable naming the folder the old engine is imported from."""
SHIPPED = ("coffee", "astronaut")
UNSHIPPED = ("rocket", "immunohistochemistry", "hubble_deep_field", "chelsea", "retina")
THUMB = 144

Engine = Callable[..., Image.Image]
T = TypeVar("T")


@dataclass
class Scores:
    """The patch measures of some outputs against their input (see the module docstring)."""

    coherence: float
    completeness: float
    worst: float
    coarse: float
    coarse_completeness: float
    copy: float
    repeat: float


@dataclass
class Row(Scores):
    seconds: float
    diversity: float
    inside_diversity: float
    sweep: list[list[float]]
    """Measured diversity (inside the frame) at each SWEEP value, one figure per seed."""


Column = tuple[str, int, str, Callable[[T], float]]
"""A printed column: title, width, format, and its value for a row."""

SCORE_COLUMNS: list[Column[Scores]] = [
    ("coher.", 8, ".5f", lambda r: r.coherence),
    ("compl.", 8, ".5f", lambda r: r.completeness),
    ("worst", 7, ".4f", lambda r: r.worst),
    ("coarse", 7, ".4f", lambda r: r.coarse),
    ("c.cpl", 7, ".4f", lambda r: r.coarse_completeness),
    ("copy", 5, ".2f", lambda r: r.copy),
    ("repeat", 6, ".3f", lambda r: r.repeat),
]
CALIBRATED = SCORE_COLUMNS[2:]
"""The measures the calibration prints: worst to repeat (the means over all patches,
coher. and compl., are not what the targets are set on)."""


def unpack_engine(commit: str, folder: Path) -> None:
    """``git archive COMMIT ipy_images/engine`` unpacked into ``folder``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", commit, "ipy_images/engine"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")


def import_engine(folder: Path, name: str) -> ModuleType:
    """The ``ipy_images/engine`` unpacked in ``folder``, imported as the package ``name``
    (beside this checkout's ``ipy_images.engine``)."""
    package = folder / "ipy_images" / "engine"
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_old_engine() -> ModuleType:
    """``ipy_images.engine`` as of OLD_COMMIT, imported as the package ``old_engine`` from
    the folder named by $OLD_ENGINE_DIR: one that main unpacked from the git history for
    this run, or a copy of ``git archive OLD_COMMIT ipy_images/engine`` unpacked, for
    machines without the history."""
    return import_engine(Path(os.environ[OLD_ENGINE_DIR]), "old_engine")


def engines() -> dict[str, Engine]:
    """Sample ``i`` of a request for ``seed``, as each engine's backend drew it."""
    from ipy_images.engine import generate_variation

    old = load_old_engine().generate_variation
    one_at_a_time = threading.Lock()

    def draw_old(image: Image.Image, i: int, diversity: float = 1.0, seed: int = 0) -> Image.Image:
        with one_at_a_time:
            return old(image, size=SIZE, seed=seed + i, diversity=diversity)

    return {
        "old": draw_old,
        "new": lambda image, i, diversity=1.0, seed=0: generate_variation(
            image, size=SIZE, seed=seed, index=i, diversity=diversity
        ),
    }


def photos() -> dict[str, Image.Image]:
    shipped = {name: sample_image(name) for name in SHIPPED}
    return {
        **{name: Image.fromarray(getattr(skimage.data, name)()) for name in UNSHIPPED},
        **shipped,
    }


def square(image: Image.Image) -> Image.Image:
    """Centre crop to a square, as the client's default fit="crop" does."""
    side = min(image.size)
    return ImageOps.fit(image.convert("RGB"), (side, side), method=Image.Resampling.LANCZOS)


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def patches(pixels: np.ndarray) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (PATCH, PATCH), axis=(0, 1))
    return np.ascontiguousarray(windows.reshape(-1, 3 * PATCH * PATCH))


def nearest(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest key of each query: squared distance per patch value, and its index."""
    index = faiss.IndexFlatL2(keys.shape[1])
    index.add(keys)
    distances, found = index.search(queries, 1)
    return distances[:, 0] / keys.shape[1], found[:, 0]


def copy_share(chosen: np.ndarray, found: np.ndarray, grid: int) -> float:
    """Largest share of the sampled output patches whose nearest input patch sits at one
    common offset, +-1 px."""
    (qy, qx), (ky, kx) = np.divmod(chosen, grid), np.divmod(found, grid)
    span = 2 * grid + 1
    hist = np.zeros((span + 2, span + 2))
    np.add.at(hist, (ky - qy + grid + 1, kx - qx + grid + 1), 1)
    near = np.sum([hist[a : a + span, b : b + span] for a in range(3) for b in range(3)], axis=0)
    return float(near.max()) / len(chosen)


def uniqueness(keys: np.ndarray) -> np.ndarray:
    """Each patch's distance to the most similar patch a fifth of the side or more away,
    relative to the mean: high for an eye or a cup, low for fur or sky."""
    grid = int(np.sqrt(len(keys)))
    distances = faiss.pairwise_distances(keys, keys)
    y, x = np.divmod(np.arange(len(keys)), grid)
    near = np.maximum(np.abs(y[:, None] - y), np.abs(x[:, None] - x)) <= grid // 5
    distances[near] = np.inf
    unique = np.sqrt(np.maximum(distances.min(axis=1), 0))
    return unique / unique.mean()


def repeat_share(found: np.ndarray, weights: np.ndarray) -> float:
    """Share of the weighted output patches (a square grid, row-major) whose source cell,
    a twelfth of the side, is also the source of a patch over a fifth of the side away."""
    grid = int(np.sqrt(len(found)))
    cell, far, cells_across = max(2, grid // 12), grid // 5, grid // max(2, grid // 12) + 1
    (sy, sx), (oy, ox) = np.divmod(found, grid), np.divmod(np.arange(len(found)), grid)
    cells = (sy // cell) * cells_across + sx // cell
    spread = []
    for position in (oy, ox):
        low, high = np.full(cells_across**2, grid), np.full(cells_across**2, -1)
        np.minimum.at(low, cells, position)
        np.maximum.at(high, cells, position)
        spread.append(high - low)
    repeated = np.maximum(*spread)[cells] > far
    weight = weights[found] ** 2
    return float(np.sum(weight * repeated) / np.sum(weight))


def grey(pixels: np.ndarray) -> np.ndarray:
    return pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def diversity(
    source: np.ndarray, outputs: list[np.ndarray], inside: np.ndarray | None = None
) -> float:
    """SinGAN's measure, over the ``inside`` pixels only if given (a boolean mask)."""
    where = np.ones(source.shape[:2], bool) if inside is None else inside
    spread = np.stack([grey(o) for o in outputs]).std(axis=0)
    return float(spread[where].mean() / grey(source)[where].std())


def inside_frame(source: np.ndarray) -> np.ndarray:
    """The pixels of ``source`` outside its frame, as the engine finds it (all, if none)."""
    from ipy_images.engine._frame import LevelFrame, frame_of

    return ~LevelFrame.at(frame_of(source), source.shape[0], PATCH).pixels


def shrink(pixels: np.ndarray, side: int) -> np.ndarray:
    image = Image.fromarray(np.uint8(np.rint(pixels * 255)))
    return to_array(image.resize((side, side), Image.Resampling.LANCZOS))


def measure(
    engine: Engine, image: Image.Image, sweep: bool
) -> tuple[Row, list[Image.Image], dict[float, list[Image.Image]]]:
    """The engine's figures on ``image``, its samples, and the sweep's samples by diversity
    (seed 0's, for the knob sheet)."""
    values = SWEEP if sweep else ()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        samples = list(pool.map(lambda i: engine(image, i), range(SAMPLES)))
        seconds = (time.perf_counter() - start) / SAMPLES
        jobs = [
            (value, seed, i)
            for value in values
            for seed in range(SWEEP_SEEDS)
            for i in range(SAMPLES)
        ]
        pictures = pool.map(lambda job: engine(image, job[2], diversity=job[0], seed=job[1]), jobs)
        drawn: dict[tuple[float, int], list[Image.Image]] = {}
        for (value, seed, _), picture in zip(jobs, pictures, strict=True):
            drawn.setdefault((value, seed), []).append(picture)
    source = to_array(image.resize((SIZE, SIZE), Image.Resampling.LANCZOS))
    outputs = [to_array(s) for s in samples]
    inside = inside_frame(source)
    knob = [
        [
            diversity(source, [to_array(s) for s in drawn[value, k]], inside)
            for k in range(SWEEP_SEEDS)
        ]
        for value in values
    ]
    swept = {value: drawn[value, 0] for value in values}
    row = Row(
        **vars(score(source, outputs)),
        seconds=seconds,
        diversity=diversity(source, outputs),
        inside_diversity=diversity(source, outputs, inside),
        sweep=knob,
    )
    return row, samples, swept


def score(source: np.ndarray, outputs: list[np.ndarray]) -> Scores:
    """The patch measures of ``outputs`` (SIZE px arrays) against ``source``."""
    keys = patches(source)
    grid = SIZE - PATCH + 1
    rng = np.random.default_rng(0)
    coherence, copies = [], []
    for out in outputs:
        chosen = rng.choice(grid * grid, QUERIES, replace=False)
        distances, found = nearest(patches(out)[chosen], keys)
        coherence.append(distances)
        copies.append(copy_share(chosen, found, grid))
    completeness = [
        nearest(keys[rng.choice(len(keys), QUERIES, replace=False)], patches(out))[0]
        for out in outputs
    ]
    coarse_keys = patches(shrink(source, COARSE))
    coarse_outputs = [patches(shrink(out, COARSE)) for out in outputs]
    coarse_found = [nearest(out, coarse_keys) for out in coarse_outputs]
    distinct = uniqueness(coarse_keys)
    return Scores(
        coherence=float(np.mean(np.concatenate(coherence))),
        completeness=float(np.mean(np.concatenate(completeness))),
        worst=float(np.mean([np.quantile(d, 0.95) for d in coherence])),
        coarse=float(np.mean([distances.mean() for distances, _ in coarse_found])),
        coarse_completeness=float(
            np.mean([nearest(coarse_keys, out)[0].mean() for out in coarse_outputs])
        ),
        copy=max(copies),
        repeat=float(np.mean([repeat_share(found, distinct) for _, found in coarse_found])),
    )


def references(image: Image.Image) -> dict[str, np.ndarray]:
    """``image`` (SIZE px) made into pictures whose scores calibrate the measures: three
    that a person would accept as new photos of the subject (mirrored, zoomed in, turned),
    one with a single seam (its halves swapped) and a collage of its quarters."""
    pixels = to_array(image)
    half = SIZE // 2
    quarters = [pixels[r : r + half, c : c + half] for r in (0, half) for c in (0, half)]
    margin = round(SIZE * 0.05)
    zoomed = image.resize((SIZE + 2 * margin,) * 2, Image.Resampling.LANCZOS).crop(
        (margin, margin, SIZE + margin, SIZE + margin)
    )
    turned = image.rotate(5, resample=Image.Resampling.BICUBIC).crop(
        (2 * margin, 2 * margin, SIZE - 2 * margin, SIZE - 2 * margin)
    )
    return {
        "mirrored": pixels[:, ::-1],
        "zoomed 1.1x": to_array(zoomed),
        "turned 5 degrees": to_array(turned.resize((SIZE, SIZE), Image.Resampling.LANCZOS)),
        "halves swapped": np.roll(pixels, half, axis=1),
        "quarters shuffled": np.concatenate(
            [np.concatenate(quarters[3:1:-1], axis=1), np.concatenate(quarters[1::-1], axis=1)]
        ),
    }


def contact_sheet(
    image: Image.Image, rows: dict[str, list[Image.Image]], *, side: int = THUMB
) -> Image.Image:
    """Input then the samples, one labelled row each, every picture ``side`` px."""
    gap, label = 6, 16
    sheet = Image.new(
        "RGB",
        ((SAMPLES + 1) * (side + gap) + gap, len(rows) * (side + label + gap) + gap),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    thumb = image.resize((side, side), Image.Resampling.LANCZOS)
    for r, (name, samples) in enumerate(rows.items()):
        y = gap + r * (side + label + gap)
        draw.text((gap, y), "input", fill="black")
        draw.text((gap + side + gap, y), name, fill="black")
        sheet.paste(thumb, (gap, y + label))
        for i, sample in enumerate(samples):
            x = gap + (i + 1) * (side + gap)
            sheet.paste(sample.resize((side, side), Image.Resampling.LANCZOS), (x, y + label))
    return sheet


def run_photo(
    name: str, sweep: bool, sheets: Path | None
) -> tuple[str, dict[str, Row], dict[str, Scores]]:
    """Both engines' figures on the photo ``name`` and the references' scores."""
    faiss.omp_set_num_threads(2)  # the measures' exact searches; the engines set their own
    image = square(photos()[name])
    resized = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    calibration = {
        title: score(to_array(resized), [pixels]) for title, pixels in references(resized).items()
    }
    results: dict[str, Row] = {}
    samples: dict[str, list[Image.Image]] = {}
    knob: dict[str, list[Image.Image]] = {}
    for engine_name, engine in engines().items():
        engine(image, 99)  # warm-up: imports and first-call costs
        # The old knob's failure is on record in issue 13; the sweep runs the new one.
        results[engine_name], samples[f"{engine_name} engine"], swept = measure(
            engine, image, sweep and engine_name == "new"
        )
        knob.update({f"diversity {value:g}": drawn for value, drawn in swept.items()})
    if sheets is not None:
        save_sheet(contact_sheet(image, samples), sheets / f"{name}.png")
        if knob:
            save_sheet(contact_sheet(image, knob), sheets / f"{name}-knob.png")
    return name, results, calibration


def save_sheet(sheet: Image.Image, path: Path) -> None:
    # 256 colours, dithered: a third of the bytes, no visible change at thumbnail size. The
    # palette refined by k-means keeps a small saturated area's colour (the astronaut's
    # purple badge, which the plain median cut turned grey) and a fundus photo's smooth
    # gradients (which an octree palette posterised). Colour error blurred by 1.5 px, on a
    # sheet of coffee and the astronaut: 1.4 levels of 255, against 2.8 and 1.9.
    sheet.quantize(256, kmeans=3, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def pinned(worker: int) -> None:
    """Process initializer: this worker runs on two cores of its own."""
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(cores[2 * worker % len(cores) :][:2]))


def _run_pinned(
    job: tuple[int, str, bool, Path | None, bool],
) -> tuple[str, dict[str, Row], dict[str, Scores]]:
    worker, name, sweep, sheets, pin = job
    if pin:
        pinned(worker)
    return run_photo(name, sweep, sheets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheets", type=Path, help="directory for the contact sheets (PNG)")
    parser.add_argument("--photos", help="comma-separated subset of the photos")
    parser.add_argument("--parallel", action="store_true", help="one 2-core process per photo")
    parser.add_argument("--no-sweep", action="store_true", help="skip the diversity sweep")
    args = parser.parse_args()
    names = args.photos.split(",") if args.photos else [*UNSHIPPED, *SHIPPED]
    if args.sheets is not None:
        args.sheets.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    sweep = not args.no_sweep
    print(f"engine benchmark: {SIZE}x{SIZE}, {SAMPLES} samples per photo, old = {OLD_COMMIT}")
    print(f"{os.cpu_count()} cores, load average at start: {load}; parallel: {args.parallel}")
    columns: list[Column[Row]] = [
        ("s/smp", 6, ".2f", lambda r: r.seconds),
        *SCORE_COLUMNS,
        ("divers.", 7, ".3f", lambda r: r.diversity),
        ("div.in", 6, ".3f", lambda r: r.inside_diversity),
    ]
    header = "".join(f" {title:>{width}}" for title, width, _, _ in columns)
    print(f"{'photo':<21}{'old engine':^{len(header)}} |{'new engine':^{len(header)}}")
    print(f"{'':<21}{header} |{header}", flush=True)
    results: dict[str, dict[str, Row]] = {}
    calibration: dict[str, dict[str, Scores]] = {}
    # The old engine is unpacked once, here, and removed at the end (the workers import it
    # from the folder, whose modules load lazily, so it must outlive them).
    scratch = tempfile.TemporaryDirectory(prefix="old_engine_")
    if OLD_ENGINE_DIR not in os.environ:
        unpack_engine(OLD_COMMIT, Path(scratch.name))
        os.environ[OLD_ENGINE_DIR] = scratch.name  # inherited by the worker processes
    with scratch, ProcessPoolExecutor(len(names) if args.parallel else 1) as pool:
        jobs = [
            pool.submit(_run_pinned, (k, name, sweep, args.sheets, args.parallel))
            for k, name in enumerate(names)
        ]
        for job in as_completed(jobs):  # each row as soon as its photo is done
            name, rows, calibration[name] = job.result()
            results[name] = rows
            cells = [
                "".join(f" {value(rows[e]):>{width}{form}}" for _, width, form, value in columns)
                for e in ("old", "new")
            ]
            print(f"{name:<21}{cells[0]} |{cells[1]}", flush=True)
    mean = {
        e: {
            title: np.mean([value(r[e]) for r in results.values()])
            for title, _, _, value in columns
        }
        for e in ("old", "new")
    }
    print(
        "new/old on average: "
        + ", ".join(f"{t} {mean['new'][t] / mean['old'][t]:.2f}x" for t, *_ in columns)
    )
    print(
        "targets: s/smp <= 2.0 (2-core machine); worst and coarse <= 0.7x old on average;"
        " copy <= 0.6 for every sample; div.in >= 0.25 per photo"
    )
    print_calibration(results, calibration)
    if sweep:
        print(
            f"\ndiversity knob sweep {SWEEP}, new engine: measured diversity of {SAMPLES}"
            f" samples, seed 0, then the mean (and std) over seeds 0-{SWEEP_SEEDS - 1}"
        )
        for name, rows in results.items():
            first = [seeds[0] for seeds in rows["new"].sweep]
            means = [float(np.mean(seeds)) for seeds in rows["new"].sweep]
            spread = [float(np.std(seeds, ddof=1)) for seeds in rows["new"].sweep]
            averaged = " ".join(f"{m:.3f} ({d:.3f})" for m, d in zip(means, spread, strict=True))
            print(
                f"{name:<21} seed 0 {' '.join(f'{v:.3f}' for v in first)}  rising: {rises(first)}"
                f" | mean {averaged}  rising: {rises(means)}"
            )


def print_calibration(
    results: dict[str, dict[str, Row]], calibration: dict[str, dict[str, Scores]]
) -> None:
    """The measures of the references (see ``references``) beside the engines', mean
    over the photos: what the figures mean for pictures a person would judge at a glance."""
    print(
        "\ncalibration: the input itself transformed, then the engines' samples"
        " (mean over the photos)"
    )
    print(f"{'':<21}" + "".join(f" {title:>7}" for title, *_ in CALIBRATED))
    titles = next(iter(calibration.values()))
    pictures: dict[str, list[Scores]] = {
        **{title: [scores[title] for scores in calibration.values()] for title in titles},
        **{f"{e} engine": [rows[e] for rows in results.values()] for e in ("old", "new")},
    }
    for title, scores in pictures.items():
        means = [np.mean([value(s) for s in scores]) for *_, value in CALIBRATED]
        print(f"{title:<21}" + "".join(f" {m:>7.4f}" for m in means))


def rises(values: list[float]) -> str:
    return "yes" if all(b > a for a, b in itertools.pairwise(values)) else "NO"


if __name__ == "__main__":
    main()
