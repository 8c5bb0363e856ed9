"""The local engine in this checkout against another revision of it, over several seeds.

How an engine change is judged before it lands (the tables in docs/engine come from it):
for each photo, at each seed, ``SAMPLES`` samples at 256 px from the engine at ``--base``
(``git archive REV ipy_images/engine``, imported beside this checkout's as the package
``base_engine``) and from this checkout's, each drawn two at a time on two threads. Per
photo it prints the means over the seeds, base beside checkout, of:

- div.in: SinGAN's diversity of the seed's samples, inside the input's frame (see
  benchmarks/engine.py; the target is 0.25 or more);
- coarse, worst, c.cpl: coarse coherence, the worst-patch figure and coarse completeness
  (see benchmarks/engine.py), in units of 1e-5 (lower is better), each sample measured
  as drawn or mirrored, whichever is nearer the input at the coarse scale (the engine
  mirrors some from diversity 2 up; since the twenty-ninth session);
- smear: the share of the samples' 15 x 15 px windows smoother (std of the grey level)
  than the smoothest 1% of the input's: where copied regions of a texture meet in a
  smooth blur, it rises (on a photo with wide plain parts it is high without any smear);
- s/smp: wall seconds per sample.

and then their means over the photos. One seed's 4 samples measure diversity to about
0.05, as much as most changes move it, so judge by the means over 4 seeds or more. The
figures rise with the samples' variety: a change that varies the samples more will score
worse on coarse coherence without drawing worse pictures, so compare at about the same
div.in, and look at the sheets: with ``--sheets DIR`` it writes ``NAME-ab.png`` per photo,
each seed's base row above its checkout row, at full size (the defects the figures miss,
a kinked rim or a broken tower, show at 256 px, not in thumbnails).

Environment switches that an experiment reads (``os.environ``) reach both engines; the
base revision ignores those it does not know.

    python benchmarks/engine_ab.py [--base main] [--photos coffee,rocket] [--seeds 0-3]
        [--diversity 1] [--sheets /tmp/ab]

``--photos`` names any of benchmarks/engine.py's photos, by default those with a layout,
or the dense textures (``--photos grass,gravel,brick,pebbles,noise``), which take the
coarsest start and the neighbours' shifts (see ipy_images/engine/_propagate.py).

The base revision needs ``generate_variation(..., index=...)``: any since issue 13's
first defect was fixed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import engine as bench
import faiss
import numpy as np
import skimage.data
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from drawn import noise, pebbles

SAMPLES = bench.SAMPLES
PHOTOS = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")
"""The photos with a layout, which take the start by seams at diversity 1."""
TEXTURES = ("grass", "gravel", "brick")
"""scikit-image's dense textures; the drawn ones (pebbles, noise) are the engine tests'."""
UNIT = 1e-5
SMEAR_WINDOW = 15
Draw = Callable[..., Image.Image]
Figures = dict[str, float]


def seeds(text: str) -> list[int]:
    """``0-3`` or ``0,2,5`` (or both, comma-separated) as a list of seeds."""
    found: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        found.extend(range(int(first), int(last or first) + 1))
    return found


def pictures() -> dict[str, Image.Image]:
    """The benchmark's photos, and the dense textures."""
    textures = {name: Image.fromarray(getattr(skimage.data, name)()) for name in TEXTURES}
    return {**bench.photos(), **textures, "pebbles": pebbles(), "noise": noise()}


def draw_seed(draw: Draw, image: Image.Image, seed: int, diversity: float) -> list[Image.Image]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(
            pool.map(
                lambda i: draw(image, size=bench.SIZE, seed=seed, index=i, diversity=diversity),
                range(SAMPLES),
            )
        )


def figures(source: np.ndarray, samples: list[Image.Image], seconds: float) -> Figures:
    outputs = [bench.to_array(sample) for sample in samples]
    scores = bench.score(source, [upright(source, output) for output in outputs])
    return {
        "div.in": bench.diversity(source, outputs, bench.inside_frame(source)),
        "coarse": scores.coarse / UNIT,
        "worst": scores.worst / UNIT,
        "c.cpl": scores.coarse_completeness / UNIT,
        "smear": smear_share(source, outputs),
        "s/smp": seconds / SAMPLES,
    }


def upright(source: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``output`` or its mirror image, whichever is nearer ``source`` at the coarse scale.
    From diversity 2 up the engine mirrors a share of its samples (see
    ipy_images/engine/_gpnn.FLIP_EVERY): a mirrored photo is as new a photo of the subject
    as any, but its patches are the input's mirrored, which the patch measures count as
    mismatches (the benchmark's calibration row "mirrored" scores 0.0087 worst against the
    engines' 0.0003)."""
    keys = bench.patches(bench.shrink(source, bench.COARSE))
    mirrored = output[:, ::-1]

    def coarse(pixels: np.ndarray) -> float:
        queries = bench.patches(bench.shrink(pixels, bench.COARSE))
        return float(bench.nearest(queries, keys)[0].mean())

    return mirrored if coarse(mirrored) < coarse(output) else output


def smear_share(source: np.ndarray, outputs: list[np.ndarray]) -> float:
    """The mean share of the ``outputs``' SMEAR_WINDOW-wide windows smoother than the
    smoothest 1% of ``source``'s."""
    smooth = np.quantile(local_contrast(source), 0.01)
    return float(np.mean([np.mean(local_contrast(output) < smooth) for output in outputs]))


def local_contrast(pixels: np.ndarray) -> np.ndarray:
    """The std of the grey level in each SMEAR_WINDOW x SMEAR_WINDOW window."""
    windows = np.lib.stride_tricks.sliding_window_view(
        bench.grey(pixels), (SMEAR_WINDOW, SMEAR_WINDOW)
    )
    return windows.std(axis=(2, 3))


COLUMNS = {
    "div.in": ".3f",
    "coarse": ".0f",
    "worst": ".0f",
    "c.cpl": ".0f",
    "smear": ".3f",
    "s/smp": ".2f",
}


def cells(means: Figures) -> str:
    return "".join(f" {means[title]:>7{form}}" for title, form in COLUMNS.items())


def compare(
    engines: dict[str, Draw],
    image: Image.Image,
    resized: Image.Image,
    seeds: list[int],
    diversity: float,
) -> tuple[dict[str, Figures], dict[str, list[Image.Image]]]:
    """Each engine's figures on ``image`` (scored against ``resized``, it at the samples'
    size), means over ``seeds``, and the samples as sheet rows (each seed's base row above
    its checkout row)."""
    source = bench.to_array(resized)
    per_seed: dict[str, list[Figures]] = {label: [] for label in engines}
    rows: dict[str, list[Image.Image]] = {}
    for draw in engines.values():
        draw(image, size=bench.SIZE, seed=0, index=99)  # warm-up: the source's pyramid
    for seed in seeds:
        for label, draw in engines.items():
            start = time.perf_counter()
            samples = draw_seed(draw, image, seed, diversity)
            per_seed[label].append(figures(source, samples, time.perf_counter() - start))
            rows[f"seed {seed}, {label}"] = samples
    means = {
        label: {title: float(np.mean([f[title] for f in runs])) for title in COLUMNS}
        for label, runs in per_seed.items()
    }
    return means, rows


def base_engine(parser: argparse.ArgumentParser, base: str, folder: Path) -> Draw:
    """``generate_variation`` of the engine at git revision ``base``, unpacked into
    ``folder`` and imported as ``base_engine``; a usage error if git cannot archive it."""
    try:
        bench.unpack_engine(base, folder)
    except subprocess.CalledProcessError as error:
        parser.error(f"git archive {base}: {error.stderr.decode().strip()}")
    draw: Draw = bench.import_engine(folder, "base_engine").generate_variation
    return draw


def checkout_engine(parser: argparse.ArgumentParser) -> Draw:
    """``generate_variation`` of this checkout's engine; a usage error if ``ipy_images`` is
    imported from elsewhere (an installed copy)."""
    import ipy_images.engine

    root = Path(__file__).resolve().parent.parent
    imported = Path(ipy_images.engine.__file__).resolve().parent
    if not imported.is_relative_to(root):
        parser.error(
            f"ipy_images is imported from {imported}, not from this checkout:"
            f" run with PYTHONPATH={root}"
        )
    draw: Draw = ipy_images.engine.generate_variation
    return draw


def photo_names(
    parser: argparse.ArgumentParser, text: str, photos: dict[str, Image.Image]
) -> list[str]:
    """The comma-separated names in ``text``; a usage error names any not in ``photos``."""
    names = text.split(",")
    if unknown := [name for name in names if name not in photos]:
        parser.error(f"unknown photos {', '.join(unknown)}; choose from {', '.join(photos)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare against")
    parser.add_argument("--photos", default=",".join(PHOTOS), help="comma-separated photos")
    parser.add_argument("--seeds", type=seeds, default=seeds("0-3"), help="e.g. 0-3 or 0,4")
    parser.add_argument("--diversity", type=float, default=1.0)
    parser.add_argument("--sheets", type=Path, help="directory for NAME-ab.png")
    args = parser.parse_args()
    checkout = checkout_engine(parser)
    import ipy_images.engine

    if not 0 < args.diversity <= ipy_images.engine.MAX_DIVERSITY:
        parser.error(f"--diversity must be in (0, {ipy_images.engine.MAX_DIVERSITY:g}]")
    photos = pictures()
    names = photo_names(parser, args.photos, photos)

    faiss.omp_set_num_threads(2)  # the measures' exact searches; the engines set their own
    with tempfile.TemporaryDirectory(prefix="base_engine_") as folder:
        engines: dict[str, Draw] = {
            "base": base_engine(parser, args.base, Path(folder)),
            "checkout": checkout,
        }
        header = "".join(f" {title:>7}" for title in COLUMNS)
        print(
            f"{args.base} (base) against this checkout: {SAMPLES} samples at diversity"
            f" {args.diversity:g}, means over seeds {args.seeds}; coarse, worst, c.cpl x1e5"
        )
        print(f"{'photo':<21}{'base':^{len(header)}} |{'checkout':^{len(header)}}")
        print(f"{'':<21}{header} |{header}", flush=True)
        if args.sheets is not None:
            args.sheets.mkdir(parents=True, exist_ok=True)
        table: dict[str, dict[str, Figures]] = {}
        for name in names:
            image = bench.square(photos[name])
            resized = image.resize((bench.SIZE, bench.SIZE), Image.Resampling.LANCZOS)
            table[name], rows = compare(engines, image, resized, args.seeds, args.diversity)
            print(f"{name:<21}{cells(table[name]['base'])} |{cells(table[name]['checkout'])}")
            if args.sheets is not None:
                sheet = bench.contact_sheet(resized, rows, side=bench.SIZE)
                sheet.save(args.sheets / f"{name}-ab.png", optimize=True)
        means = {
            label: {t: float(np.mean([row[label][t] for row in table.values()])) for t in COLUMNS}
            for label in engines
        }
        print(f"{'mean':<21}{cells(means['base'])} |{cells(means['checkout'])}")


if __name__ == "__main__":
    main()
